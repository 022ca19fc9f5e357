"""``weavedrive@1.0``: items on the permanent store opened by a process as read-only files.

Contract
--------
* Assumes: a ``GatewayReader`` on an Arweave-compatible gateway (pyao's own, or
  a remote one). Item data and headers are immutable once stored.
* Produces: ``WeaveDrive.open(path, process, msg)`` for three kinds of path
  (spec ai-on-ao.md §1):

  - ``/data/<id>``: the item's data, read lazily by byte range through a shared
    ``BlockCache`` (bounded bytes, LRU); a multi-GiB item is never held whole.
    Gated by the access rules of ``_access`` (Extension tag, Availability-Type,
    attestations at or below the message's ``Block-Height``, On-Boot).
  - ``/tx/<id>``: the gateway's ``GET /tx/<id>`` JSON plus ``ownerAddress``
    (sha256 of the owner key), as the official WeaveDrive writes it.
  - ``/block/<height>``: the gateway's ``GET /block/height/<h>`` body.

  ``/tx`` and ``/block`` need the Extension tag but no attestation (as the
  official code). Unlike the official drive, ``/block/<h>`` above the
  message's ``Block-Height`` is refused: whether it exists yet depends on when
  a CU evaluates the message, and the answer must not. A file that may not be read raises ``DeviceAccessDenied``, one
  the gateway does not have ``NotFound``, a bad path ``DeviceError``; never data.
* Side effects: HTTP to the gateway; memory bounded by the cache (``cache_bytes``)
  plus small memos (item sizes, module tags, headers).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from typing import Any

from pyao.abc import DriveFile, FileDrive, ProcessContext
from pyao.data import b64url_decode, b64url_encode
from pyao.devices._access import NOT_ENABLED, Admissions, Tags, has_extension, message_height, tag_value
from pyao.devices._ranges import BLOCK_BYTES, MAX_FETCH_BYTES, BlockCache, GatewayReader, MiB
from pyao.errors import DeviceAccessDenied, DeviceError

_ID = r"[A-Za-z0-9_-]{43}"
_PATH = re.compile(rf"/(data)/({_ID})|/(tx)/({_ID})|/(block)/(0|[1-9][0-9]{{0,17}})")

#: how many /tx and /block bodies (and item sizes, module tag sets) are remembered
MEMO_ENTRIES = 4096


def parse_path(path: str) -> tuple[str, str]:
    """``("data"|"tx"|"block", id_or_height)`` for a WeaveDrive path; DeviceError otherwise."""
    match = _PATH.fullmatch(path)
    if match is None:
        raise DeviceError(f"{path!r} is not a WeaveDrive path (/data/<id>, /tx/<id>, /block/<height>)")
    kind, value = (g for g in match.groups() if g is not None)
    return kind, value


def is_drive_path(path: str) -> bool:
    return _PATH.fullmatch(path) is not None


class _Memo:
    """A small thread-safe LRU map for immutable facts (sizes, tags, headers)."""

    def __init__(self, entries: int = MEMO_ENTRIES) -> None:
        self.entries = entries
        self._map: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._map.get(key)
            if value is not None:
                self._map.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> Any:
        with self._lock:
            self._map[key] = value
            self._map.move_to_end(key)
            while len(self._map) > self.entries:
                self._map.popitem(last=False)
        return value


class DataFile(DriveFile):
    """``/data/<id>``: byte ranges through the drive's block cache, with sequential read-ahead.

    The read-ahead window doubles while reads follow each other (up to
    ``MAX_FETCH_BYTES``) and drops to nothing on a jump, so a random 4 KiB read
    fetches one block and a sequential scan fetches megabytes per request."""

    def __init__(self, cache: BlockCache, item_id: str, size: int) -> None:
        self.cache, self.item_id, self.size = cache, item_id, size
        self._next = 0
        self._ahead = 0

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise DeviceError(f"bad read: offset {offset}, length {length}")
        if offset >= self.size or length == 0:
            return b""
        if offset == self._next:
            self._ahead = min(MAX_FETCH_BYTES, max(BLOCK_BYTES, self._ahead * 2))
        else:
            self._ahead = 0
        data = self.cache.read(self.item_id, self.size, offset, length, self._ahead)
        self._next = offset + len(data)
        return data


class BytesFile(DriveFile):
    """A small file held whole (``/tx/<id>``, ``/block/<height>``)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise DeviceError(f"bad read: offset {offset}, length {length}")
        return self.data[offset : offset + length]


class WeaveDrive(FileDrive):
    """The ``weavedrive@1.0`` device (see the module docstring)."""

    def __init__(self, reader: GatewayReader, *, cache_bytes: int = 64 * MiB) -> None:
        self.reader = reader
        self.cache = BlockCache(reader.read, capacity=cache_bytes)
        self.admissions = Admissions(reader.graphql)
        self._sizes = _Memo()
        self._module_tags = _Memo()
        self._headers = _Memo(256)

    def close(self) -> None:
        self.reader.close()

    def open(self, path: str, process: ProcessContext, msg: dict) -> DriveFile:
        kind, value = parse_path(path)
        module_tags = self.module_tags(tag_value(process.tags, "Module"))
        if kind == "data":
            self.admissions.check(value, process.tags, module_tags, msg)
            return DataFile(self.cache, value, self.size(value))
        if not has_extension(process.tags, module_tags):
            raise DeviceAccessDenied(NOT_ENABLED)
        if kind == "tx":
            return BytesFile(self._header(f"/tx/{value}", _with_owner_address))
        if int(value) > message_height(msg):  # a later block may not exist yet on another CU: refused
            raise DeviceAccessDenied(f"/block/{value} is above the message's Block-Height {message_height(msg)}")
        return BytesFile(self._header(f"/block/height/{value}", bytes))

    def size(self, item_id: str) -> int:
        size = self._sizes.get(item_id)
        return size if size is not None else self._sizes.put(item_id, self.reader.size(item_id))

    def module_tags(self, module_id: str | None) -> Tags:
        """The tags of the process's module (where Extension / Availability-Type defaults live)."""
        if not module_id:
            return ()
        tags = self._module_tags.get(module_id)
        if tags is None:
            query = "query($ids:[ID!]){transactions(ids:$ids){edges{node{tags{name value}}}}}"
            edges = self.reader.graphql(query, {"ids": [module_id]})["transactions"]["edges"]
            if not edges:
                return ()  # not on the gateway (yet): no module defaults, not remembered
            tags = self._module_tags.put(module_id, tuple((t["name"], t["value"]) for t in edges[0]["node"]["tags"]))
        return tags

    def _header(self, path: str, shape: Any) -> bytes:
        body = self._headers.get(path)
        return body if body is not None else self._headers.put(path, shape(self.reader.text(path)))


def _with_owner_address(body: bytes) -> bytes:
    """The /tx JSON with ``ownerAddress`` added (b64url sha256 of the owner key), as the official drive."""
    try:
        entry = json.loads(body)
        entry["ownerAddress"] = b64url_encode(hashlib.sha256(b64url_decode(entry["owner"])).digest())
    except (ValueError, KeyError, TypeError) as exc:
        raise DeviceError(f"the gateway's transaction header is not usable: {exc}") from None
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False).encode()
