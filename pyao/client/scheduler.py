"""Client of a scheduler unit (pyao's or the official Rust SU): the calls the MU and CU make."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pyao.client._base import UnitClient
from pyao.errors import UnitError


class SchedulerClient(UnitClient):
    unit_name = "scheduler unit"

    async def info(self) -> dict[str, Any]:
        """``GET /``: ``{"timestamp", "address"}``."""
        return await self.json("GET", "/")

    async def timestamp(self) -> tuple[int, int]:
        """``GET /timestamp``: (timestamp ms, block height), both parsed as the CU does."""
        body = await self.json("GET", "/timestamp")
        try:
            return int(body["timestamp"]), int(body["block_height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UnitError("scheduler /timestamp answered without numeric timestamp/block_height") from exc

    async def schedule(self, raw_item: bytes) -> dict[str, Any]:
        """``POST /`` a signed Process or Message item; ``{"timestamp", "id"}``."""
        return await self.json("POST", "/", content=raw_item, headers={"content-type": "application/octet-stream"})

    async def assign(
        self, process_id: str, message_id: str, *, base_layer: bool = False, exclude: list[str] | None = None
    ) -> dict[str, Any]:
        """``POST /?process-id=&assign=``: schedule an existing item onto another process."""
        params: dict[str, str] = {"process-id": process_id, "assign": message_id}
        if base_layer:
            params["base-layer"] = ""
        if exclude:
            params["exclude"] = ",".join(exclude)
        return await self.json("POST", "/", params=params)

    async def page(
        self, process_id: str, *, from_: str | None = None, to: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """One schedule page: ``GET /{pid}?process-id=&from=&to=&limit=``."""
        params: dict[str, str] = {"process-id": process_id}
        if from_ is not None:
            params["from"] = from_
        if to is not None:
            params["to"] = to
        if limit is not None:
            params["limit"] = str(limit)
        return await self.json("GET", f"/{process_id}", params=params)

    async def entries(
        self, process_id: str, *, from_: str | None = None, to: str | None = None, page_size: int = 1000
    ) -> AsyncIterator[dict[str, Any]]:
        """Every schedule entry (``{"message", "assignment"}``) after ``from_``, up to ``to``,
        following ``page_info.has_next_page`` and the last edge's cursor as the CU does."""
        cursor = from_
        while True:
            page = await self.page(process_id, from_=cursor, to=to, limit=page_size)
            edges = page.get("edges") or []
            for edge in edges:
                yield edge["node"]
            if not edges or not page.get("page_info", {}).get("has_next_page"):
                return
            cursor = edges[-1]["cursor"]

    async def message(self, message_id: str, process_id: str) -> dict[str, Any]:
        """``GET /{msgId}?process-id=``: one ``{"message", "assignment"}``."""
        return await self.json("GET", f"/{message_id}", params={"process-id": process_id})

    async def process(self, process_id: str) -> dict[str, Any]:
        """``GET /processes/{pid}``."""
        return await self.json("GET", f"/processes/{process_id}")

    async def latest(self, process_id: str) -> dict[str, Any]:
        """``GET /{pid}/latest``."""
        return await self.json("GET", f"/{process_id}/latest")
