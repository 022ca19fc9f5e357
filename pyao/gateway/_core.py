"""The gateway's pure logic: verify and unbundle uploads, Range headers, JSON shapes.

Nothing here touches storage or HTTP; ``_server`` calls these and a ``GatewayStore``.

Upload rules: the body is one signed ANS-104 data item. Its signature must
verify. An item tagged ``Bundle-Format: binary`` + ``Bundle-Version: 2.0.0`` is
unbundled, recursively up to ``MAX_BUNDLE_DEPTH`` levels, and every nested item
must parse and verify too: one bad item refuses the whole upload (DataError,
HTTP 400) and nothing is stored.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from pyao.data import Bundle, DataItem, b64url_encode, is_bundle
from pyao.errors import DataError, RequestError
from pyao.gateway._model import Block, ItemRecord, NewItem, Upload

#: Bundles inside bundles: the root is depth 0; items deeper than this are refused.
MAX_BUNDLE_DEPTH = 4
#: The most items one upload may hold, all levels together.
MAX_ITEMS_PER_UPLOAD = 100_000


# ------------------------------------------------------------------ ingest


def prepare_upload(raw: bytes) -> Upload:
    """Parse, verify and unbundle ``raw`` (CPU-bound: run it off the event loop)."""
    if not raw:
        raise DataError("the request body must be a signed ANS-104 data item")
    root = DataItem.from_bytes(raw, verify=True)
    items: list[NewItem] = []
    seen: set[str] = set()
    _collect(root, len(raw) - len(root.data), None, 0, items, seen)
    return Upload(raw, tuple(items))


def _collect(item: DataItem, data_at: int, parent: str | None, depth: int, out: list[NewItem], seen: set[str]) -> None:
    if item.id in seen:
        return
    seen.add(item.id)
    if len(out) >= MAX_ITEMS_PER_UPLOAD:
        raise DataError(f"an upload may hold at most {MAX_ITEMS_PER_UPLOAD} items")
    out.append(NewItem(record_of(item, bundled_in=parent), data_at))
    if not is_bundle(item):
        return
    if depth >= MAX_BUNDLE_DEPTH:
        raise DataError(f"bundle {item.id} nests deeper than {MAX_BUNDLE_DEPTH} levels")
    try:
        bundle = Bundle.from_bytes(item.data, verify=True)
    except DataError as exc:
        raise DataError(f"bundle {item.id}: {exc}") from None
    offset = data_at + 32 + 64 * len(bundle.items)
    for nested in bundle.items:
        size = encoded_length(nested)
        _collect(nested, offset + size - len(nested.data), item.id, depth + 1, out, seen)
        offset += size


def encoded_length(item: DataItem) -> int:
    """The length of ``item.to_bytes()``, without building it."""
    return (
        2
        + len(item.signature)
        + len(item.owner)
        + (33 if item.target else 1)
        + (33 if item.anchor else 1)
        + 16
        + len(item.tag_bytes)
        + len(item.data)
    )


def record_of(item: DataItem, *, bundled_in: str | None = None) -> ItemRecord:
    return ItemRecord(
        id=item.id,
        signature_type=item.signature_type,
        signature=item.signature,
        owner=item.owner,
        owner_address=item.owner_address,
        target=item.target_id,
        anchor=item.anchor,
        tags=item.tags,
        data_size=len(item.data),
        bundled_in=bundled_in,
    )


def block_id(previous: str, height: int, timestamp: int, item_ids: list[str]) -> str:
    """A block's 43-character id: a hash of its place in the chain and its contents."""
    digest = hashlib.sha256(f"pyao-block\n{previous}\n{height}\n{timestamp}\n".encode())
    for item_id in item_ids:
        digest.update(item_id.encode("ascii") + b"\n")
    return b64url_encode(digest.digest())


# ------------------------------------------------------------------ Range

_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


class Unsatisfiable(RequestError):
    """A Range that selects no byte of the data (HTTP 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span a ``Range`` header asks of ``size`` bytes, or None for all.

    One span only: ``bytes=a-b``, ``bytes=a-``, ``bytes=-n``. Headers in any other
    form are ignored (RFC 9110 allows that); a span past the end raises Unsatisfiable.
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable("range selects no bytes")
        return max(0, size - suffix), size - 1
    start = int(first)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: ignored
    end = size - 1 if last == "" else int(last)
    if start >= size:
        raise Unsatisfiable(f"range starts at {start}, data has {size} bytes")
    return start, min(end, size - 1)


# ------------------------------------------------------------------ response shapes

#: Response headers a tag may never set or replace.
_RESERVED_HEADERS = frozenset(
    {
        "accept-ranges",
        "age",
        "allow",
        "cache-control",
        "connection",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expires",
        "keep-alive",
        "last-modified",
        "location",
        "proxy-authenticate",
        "proxy-connection",
        "retry-after",
        "server",
        "set-cookie",
        "strict-transport-security",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "vary",
        "via",
        "www-authenticate",
        "access-control-allow-origin",
        "access-control-allow-headers",
        "access-control-allow-methods",
        "access-control-expose-headers",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def tag_headers(record: ItemRecord) -> dict[str, str]:
    """The item's tags as response headers (first value of each name).

    Tags whose name is not an HTTP token, names a standard header, or whose value
    is not a latin-1 header value (control characters, code points past U+00FF)
    are left out.
    """
    headers: dict[str, str] = {}
    for tag in record.tags:
        name = tag.name.lower()
        if name in headers or name in _RESERVED_HEADERS or not _TOKEN.fullmatch(tag.name):
            continue
        if not _HEADER_VALUE.fullmatch(tag.value):
            continue
        headers[name] = tag.value.strip(" \t")
    return headers


def content_type(record: ItemRecord) -> str:
    value = record.content_type
    if value and _HEADER_VALUE.fullmatch(value) and value.strip():
        return value.strip(" \t")
    return "application/octet-stream"


def tx_json(record: ItemRecord) -> dict[str, Any]:
    """``GET /tx/{id}``: an Arweave transaction header (format 2) for the item."""
    body: dict[str, Any] = {
        "format": 2,
        "id": record.id,
        "last_tx": b64url_encode(record.anchor),
        "owner": b64url_encode(record.owner),
        "tags": [
            {"name": b64url_encode(t.name.encode("utf-8")), "value": b64url_encode(t.value.encode("utf-8"))}
            for t in record.tags
        ],
        "target": record.target,
        "quantity": "0",
        "data": "",
        "data_size": str(record.data_size),
        "data_root": "",
        "reward": "0",
        "signature": b64url_encode(record.signature),
        "signature_type": record.signature_type,
    }
    if record.bundled_in:
        body["bundledIn"] = record.bundled_in
    return body


def block_json(block: Block, txs: list[str]) -> dict[str, Any]:
    return {
        "indep_hash": block.id,
        "height": block.height,
        "timestamp": block.timestamp,
        "previous_block": block.previous,
        "txs": txs,
    }


def network_info(height: int, current: str, pending: int) -> dict[str, Any]:
    """``GET /`` and ``/info``: Arweave-style network info."""
    return {
        "network": "pyao.N.1",
        "version": 5,
        "release": 1,
        "height": height,
        "current": current,
        "blocks": height + 1,
        "peers": 0,
        "queue_length": pending,
        "node_state_latency": 0,
    }
