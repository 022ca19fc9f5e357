"""Client of an Arweave-compatible gateway: pyao's own, or any remote one (read side)."""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from pyao.client._base import UnitClient
from pyao.errors import NotFound, UnitError


class GatewayClient(UnitClient):
    unit_name = "gateway"

    async def info(self) -> dict[str, Any]:
        """``GET /info``: network info; ``height`` is the current block height."""
        return await self.json("GET", "/info")

    async def height(self) -> int:
        info = await self.info()
        try:
            return int(info["height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UnitError("gateway /info has no numeric height") from exc

    async def upload(self, raw: bytes) -> dict[str, Any]:
        """``POST /tx/arweave``: store a signed data item (or a bundle item); returns ``{"id", …}``."""
        return await self.json("POST", "/tx/arweave", content=raw, headers={"content-type": "application/octet-stream"})

    async def upload_stream(self, chunks: AsyncIterable[bytes], length: int) -> dict[str, Any]:
        """``POST /tx/arweave`` with a body of ``length`` bytes read from ``chunks`` (a large item)."""
        headers = {"content-type": "application/octet-stream", "content-length": str(length)}
        return await self.json("POST", "/tx/arweave", content=chunks, headers=headers)

    async def raw(self, item_id: str, *, start: int | None = None, end: int | None = None) -> bytes:
        """``GET /raw/{id}``: the item's data, or bytes ``start..end`` (inclusive) of it."""
        headers = {}
        if start is not None:
            headers["range"] = f"bytes={start}-{'' if end is None else end}"
        return (await self.request("GET", f"/raw/{item_id}", headers=headers)).content

    async def exists(self, item_id: str) -> bool:
        """``HEAD /{id}``."""
        try:
            await self.request("HEAD", f"/{item_id}")
        except NotFound:
            return False
        return True

    async def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /graphql``; returns ``data``, raising UnitError on GraphQL errors."""
        body = await self.json("POST", "/graphql", json={"query": query, "variables": variables or {}})
        if body.get("errors"):
            raise UnitError(f"gateway GraphQL error: {body['errors'][0].get('message')}")
        return body["data"]
