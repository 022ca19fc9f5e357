"""Client of a messenger unit (pyao's or the official MU): the calls aoconnect makes to it."""

from __future__ import annotations

from typing import Any

from pyao.client._base import UnitClient
from pyao.errors import UnitError

_OCTETS = {"content-type": "application/octet-stream"}


class MessengerClient(UnitClient):
    unit_name = "messenger unit"

    async def send(self, raw_item: bytes) -> dict[str, Any]:
        """``POST /`` a signed Process or Message item: ``{"message", "id"}`` (HTTP 202)."""
        return _id_answer(await self.json("POST", "/", content=raw_item, headers=_OCTETS), "POST /")

    async def assign(
        self, process_id: str, message_id: str, *, exclude: list[str] | None = None, base_layer: bool = False
    ) -> dict[str, Any]:
        """``POST /?process-id=&assign=[&exclude=a,b][&base-layer]`` with no body: ``{"message", "id"}``."""
        params: dict[str, str] = {"process-id": process_id, "assign": message_id}
        if exclude:
            params["exclude"] = ",".join(exclude)
        if base_layer:
            params["base-layer"] = ""
        return _id_answer(await self.json("POST", "/", params=params), "POST /?assign")

    async def monitor(self, process_id: str, raw_item: bytes) -> str:
        """``POST /monitor/{pid}`` with a signed item; the MU's text answer."""
        return (await self.request("POST", f"/monitor/{process_id}", content=raw_item, headers=_OCTETS)).text

    async def unmonitor(self, process_id: str) -> str:
        """``DELETE /monitor/{pid}``; the MU's text answer."""
        return (await self.request("DELETE", f"/monitor/{process_id}")).text


def _id_answer(body: Any, call: str) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise UnitError(f"messenger unit answered {call} without an id: {str(body)[:200]}")
    return body
