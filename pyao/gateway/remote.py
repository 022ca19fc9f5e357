"""A read-only ``GatewayStore`` over a remote Arweave gateway (arweave.net, or another pyao gateway).

``pyao gateway --db https://arweave.net`` serves the remote's items through the
same routes: reads go to the remote (GraphQL for metadata and queries, ``/raw``
with Range for data, ``/info`` for the height, ``/block/height`` for blocks);
uploads and ``/mine`` are refused with RequestError (HTTP 400). Cursors are the
remote's own, passed through unchanged. A remote that fails or answers badly
raises UnitError (HTTP 503).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from pyao.abc import GatewayStore
from pyao.client.gateway import GatewayClient
from pyao.data import SCHEMES, Tag, b64url_decode
from pyao.errors import DataError, NotFound, RequestError, UnitError
from pyao.gateway._model import (
    CHUNK_BYTES,
    Block,
    BlockQuery,
    ChainInfo,
    ItemRecord,
    Page,
    Sort,
    TransactionQuery,
    Upload,
)

_NODE = (
    "id anchor signature recipient owner { address key } tags { name value } data { size type } "
    "block { id height timestamp previous } bundledIn { id }"
)
TRANSACTIONS_QUERY = (
    "query ($ids: [ID!], $owners: [String!], $recipients: [String!], $tags: [TagFilter!], $bundledIn: [ID!], "
    "$block: BlockFilter, $first: Int, $after: String, $sort: SortOrder) { transactions(ids: $ids, owners: $owners, "
    "recipients: $recipients, tags: $tags, bundledIn: $bundledIn, block: $block, first: $first, after: $after, "
    "sort: $sort) { pageInfo { hasNextPage } edges { cursor node { " + _NODE + " } } } }"
)
BLOCKS_QUERY = (
    "query ($ids: [ID!], $height: BlockFilter, $first: Int, $after: String, $sort: SortOrder) { blocks(ids: $ids, "
    "height: $height, first: $first, after: $after, sort: $sort) { pageInfo { hasNextPage } "
    "edges { cursor node { id height timestamp previous } } } }"
)
_READ_ONLY = "this gateway is a read-only view of {url}"


class RemoteStore(GatewayStore):
    writable = False

    def __init__(self, url: str, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = GatewayClient(self.url, transport=transport)

    async def info(self) -> ChainInfo:
        info = await self._client.info()
        try:
            return ChainInfo(int(info["height"]), str(info.get("current", "")), int(info.get("queue_length") or 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise UnitError(f"gateway {self.url} /info has no numeric height") from exc

    async def put(self, upload: Upload) -> bool:
        raise RequestError(_READ_ONLY.format(url=self.url))

    async def seal(self, timestamp: int | None = None) -> Block:
        raise RequestError(_READ_ONLY.format(url=self.url))

    async def item(self, item_id: str) -> ItemRecord | None:
        page = await self.transactions(TransactionQuery(ids=(item_id,), first=1))
        return page.edges[0][1] if page.edges else None  # type: ignore[return-value]

    async def read(self, item_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        at = start
        while at <= end:
            upto = min(at + CHUNK_BYTES - 1, end)
            piece = await self._client.raw(item_id, start=at, end=upto)
            if len(piece) > upto - at + 1:  # the remote ignored Range: it sent everything
                piece = piece[at : upto + 1]
            if not piece:
                raise UnitError(f"gateway {self.url} sent no bytes for {item_id} at {at}")
            yield piece
            at += len(piece)

    async def transactions(self, query: TransactionQuery) -> Page:
        variables: dict[str, Any] = {
            "ids": list(query.ids) or None,
            "owners": list(query.owners) or None,
            "recipients": list(query.recipients) or None,
            "bundledIn": list(query.bundled_in) or None,
            "tags": [_tag_filter(t.name, t.values, t.negate) for t in query.tags] or None,
            "block": _range(query.min_height, query.max_height),
            "first": query.first,
            "after": query.after,
            "sort": "HEIGHT_ASC" if query.sort is Sort.ASC else "HEIGHT_DESC",
        }
        data = await self._client.graphql(TRANSACTIONS_QUERY, _present(variables))
        connection = _field(data, "transactions")
        edges = tuple((edge["cursor"], _record(edge["node"])) for edge in connection["edges"])
        return Page(edges, bool(connection["pageInfo"]["hasNextPage"]))

    async def blocks(self, query: BlockQuery) -> Page:
        variables = {
            "ids": list(query.ids) or None,
            "height": _range(query.min_height, query.max_height),
            "first": query.first,
            "after": query.after,
            "sort": "HEIGHT_ASC" if query.sort is Sort.ASC else "HEIGHT_DESC",
        }
        data = await self._client.graphql(BLOCKS_QUERY, _present(variables))
        connection = _field(data, "blocks")
        try:
            edges = tuple((edge["cursor"], _block(edge["node"])) for edge in connection["edges"])
            return Page(edges, bool(connection["pageInfo"]["hasNextPage"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UnitError(f"gateway {self.url} answered blocks with a bad shape") from exc

    async def block(self, height: int) -> tuple[Block, list[str]] | None:
        try:
            body = await self._client.json("GET", f"/block/height/{height}")
        except NotFound:
            return None
        try:
            block = Block(int(body["height"]), body["indep_hash"], int(body["timestamp"]), body["previous_block"])
            return block, [str(tx) for tx in body.get("txs", [])]
        except (KeyError, TypeError, ValueError) as exc:
            raise UnitError(f"gateway {self.url} answered /block/height/{height} with a bad shape") from exc

    async def close(self) -> None:
        await self._client.close()

    def __repr__(self) -> str:
        return f"RemoteStore({self.url!r})"


def _present(variables: dict[str, Any]) -> dict[str, Any]:
    """Absent variables take the schema's defaults; null ones would override them."""
    return {k: v for k, v in variables.items() if v is not None}


def _tag_filter(name: str, values: tuple[str, ...], negate: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "values": list(values)}
    if negate:
        spec["op"] = "NEQ"
    return spec


def _range(low: int | None, high: int | None) -> dict[str, int] | None:
    spec = {k: v for k, v in (("min", low), ("max", high)) if v is not None}
    return spec or None


def _field(data: Any, name: str) -> dict[str, Any]:
    connection = data.get(name) if isinstance(data, dict) else None
    if not isinstance(connection, dict) or not isinstance(connection.get("edges"), list):
        raise UnitError(f"gateway GraphQL answer has no {name} connection")
    return connection


def _block(node: dict[str, Any] | None) -> Block | None:
    if not node:
        return None
    return Block(int(node["height"]), node["id"], int(node["timestamp"]), node.get("previous") or "")


def _signature_type(owner: bytes, address: str) -> int:
    """GraphQL does not say the signature type: the one whose key length and address fit."""
    fitting = [t for t, scheme in sorted(SCHEMES.items()) if scheme.owner_length == len(owner)]
    for sig_type in fitting:
        if SCHEMES[sig_type].address(owner) == address:
            return sig_type
    return fitting[0] if fitting else 0


def _record(node: dict[str, Any]) -> ItemRecord:
    try:
        owner = b64url_decode(node["owner"]["key"])
        address = node["owner"]["address"]
        bundle = node.get("bundledIn")
        return ItemRecord(
            id=node["id"],
            signature_type=_signature_type(owner, address),
            signature=b64url_decode(node["signature"]),
            owner=owner,
            owner_address=address,
            target=node.get("recipient") or "",
            anchor=(node.get("anchor") or "").encode("utf-8"),
            tags=tuple(Tag(t["name"], t["value"]) for t in node.get("tags") or ()),
            data_size=int(node["data"]["size"]),
            bundled_in=bundle["id"] if bundle else None,
            block=_block(node.get("block")),
        )
    except (KeyError, TypeError, ValueError, DataError) as exc:
        raise UnitError(f"gateway GraphQL node has a bad shape: {exc}") from exc
