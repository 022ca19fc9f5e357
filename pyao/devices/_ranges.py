"""Byte ranges of gateway data: a synchronous gateway reader and a bounded block cache.

Contract
--------
* Assumes: an Arweave-compatible gateway at ``url`` that answers ``HEAD|GET
  /raw/{id}`` (with ``Range: bytes=a-b`` → 206), ``GET /tx/{id}``, ``GET
  /block/height/{h}`` and ``POST /graphql`` (pyao's gateway, or arweave.net).
* Produces: ``GatewayReader`` (blocking calls, safe from many VM threads: one
  pooled ``httpx.Client``) and ``BlockCache``: fixed-size aligned blocks of item
  data, least recently used evicted first, holding at most ``capacity`` bytes.
  ``BlockCache.read`` answers any span by fetching only the blocks it misses, in
  one Range request per run of missing blocks.
* Side effects: HTTP requests to the gateway; memory bounded by the cache's
  capacity plus one request's span (``max_fetch`` bytes) at a time per thread.
  Item data is immutable, so a cached block never goes stale.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx

from pyao.errors import DeviceError, NotFound

KiB = 1024
MiB = 1024 * KiB

#: cache granularity: one aligned block of an item's data
BLOCK_BYTES = 64 * KiB
#: the largest span one Range request asks for (sequential read-ahead grows up to this)
MAX_FETCH_BYTES = 4 * MiB


class GatewayReader:
    """Blocking reads from a gateway, mapping failures to ``NotFound`` / ``DeviceError``.

    ``url`` may list several gateways, comma-separated (as the official CU passes
    ``ARWEAVE_URL`` and its fallbacks to WeaveDrive): each request goes to them in
    turn and the first success answers; if none succeeds, the first one's failure
    is raised."""

    def __init__(self, url: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None) -> None:
        self.urls = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
        if not self.urls:
            raise DeviceError("WeaveDrive needs a gateway URL")
        self.url = self.urls[0]
        self._clients = [httpx.Client(base_url=u, timeout=timeout, transport=transport) for u in self.urls]

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def _response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The first successful (2xx) response among the gateways, its body not yet read (close it)."""
        first: Exception | None = None
        for url, client in zip(self.urls, self._clients, strict=True):
            try:
                response = client.send(client.build_request(method, path, **kwargs), stream=True)
            except httpx.HTTPError as exc:
                first = first or DeviceError(f"gateway at {url} is unreachable: {exc}")
                continue
            if response.status_code < 300:
                return response
            response.close()
            if response.status_code == 404:
                first = first or NotFound(f"the gateway has no {path}")
            else:
                first = first or DeviceError(f"gateway at {url} answered {method} {path} with {response.status_code}")
        raise first  # type: ignore[misc]

    def _body(self, method: str, path: str, **kwargs: Any) -> bytes:
        response = self._response(method, path, **kwargs)
        try:
            return response.read()
        except httpx.HTTPError as exc:
            raise DeviceError(f"gateway failed while sending {path}: {exc}") from exc
        finally:
            response.close()

    def size(self, item_id: str) -> int:
        """The length of an item's data (``HEAD /raw/{id}``)."""
        response = self._response("HEAD", f"/raw/{item_id}", headers={"accept-encoding": "identity"})
        response.close()
        try:
            return int(response.headers["content-length"])
        except (KeyError, ValueError):
            raise DeviceError(f"gateway gave no Content-Length for {item_id}") from None

    def read(self, item_id: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive) of an item's data, exactly. A gateway that ignores
        ``Range`` (200) is read only up to ``end``, never to the end of a large item."""
        want = end - start + 1
        headers = {"range": f"bytes={start}-{end}", "accept-encoding": "identity"}
        response = self._response("GET", f"/raw/{item_id}", headers=headers)
        at = 0 if response.status_code == 200 else start  # the offset of the next byte of the stream
        parts: list[bytes] = []
        try:
            for piece in response.iter_bytes():
                if at + len(piece) > start:  # bytes before ``start`` (a 200) are dropped as they pass
                    parts.append(piece[max(0, start - at) :])
                at += len(piece)
                if at > end:
                    break
        except httpx.HTTPError as exc:
            raise DeviceError(f"gateway failed while sending {item_id}: {exc}") from exc
        finally:
            response.close()
        body = b"".join(parts)[:want]
        if len(body) != want:
            raise DeviceError(f"gateway sent {len(body)} bytes for range {start}-{end} of {item_id}")
        return body

    def text(self, path: str) -> bytes:
        """The body of ``GET path`` (``/tx/{id}``, ``/block/height/{h}``)."""
        return self._body("GET", path)

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        raw = self._body("POST", "/graphql", json={"query": query, "variables": variables})
        try:
            body = json.loads(raw)
            if body.get("errors"):
                raise DeviceError(f"gateway GraphQL error: {body['errors'][0].get('message')}")
            return body["data"]
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise DeviceError(f"gateway GraphQL answer is not usable: {exc}") from None


class BlockCache:
    """Aligned ``block``-byte pieces of item data, LRU, at most ``capacity`` bytes in all.

    ``fetch(item_id, start, end)`` supplies bytes ``start..end`` on a miss, at most
    ``max_fetch`` bytes per call (a long miss is several calls). Thread
    safe: the map is guarded by a lock; fetches run outside it (two threads may
    fetch the same block once each; the second store is a no-op).
    """

    def __init__(
        self,
        fetch: Callable[[str, int, int], bytes],
        *,
        capacity: int = 64 * MiB,
        block: int = BLOCK_BYTES,
        max_fetch: int = MAX_FETCH_BYTES,
    ) -> None:
        if capacity < block:
            raise ValueError("the cache must hold at least one block")
        self.fetch, self.capacity, self.block, self.max_fetch = fetch, capacity, block, max_fetch
        self._blocks: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.fetched_bytes = 0

    @property
    def held(self) -> int:
        """Bytes held now (never above ``capacity``)."""
        return self._held

    def read(self, item_id: str, size: int, offset: int, length: int, ahead: int = 0) -> bytes:
        """Up to ``length`` bytes of an item of ``size`` bytes from ``offset``; on a miss, also
        fetch up to ``ahead`` bytes past the span (read-ahead) in the same request."""
        end = min(size, offset + length)  # exclusive
        if offset >= end:
            return b""
        first, last = offset // self.block, (end - 1) // self.block
        if first == last:  # the hot path: a hit inside one block, without the lock (dict ops are atomic)
            key = (item_id, first)
            piece = self._blocks.get(key)
            if piece is not None:
                # evicted meanwhile by another thread: the bytes are still ours (try/except: the hot path)
                try:  # noqa: SIM105
                    self._blocks.move_to_end(key)
                except KeyError:
                    pass
                self.hits += 1
                skip = offset - first * self.block
                return piece[skip : skip + end - offset]
        pieces = self._lookup(item_id, first, last)
        if any(p is None for p in pieces):
            self._fill(item_id, size, first, last, pieces, ahead)
        data = pieces[0] if first == last else b"".join(pieces)  # type: ignore[arg-type]
        skip = offset - first * self.block
        if skip == 0 and len(data) == end - offset:
            return data  # type: ignore[return-value]
        return data[skip : skip + end - offset]  # type: ignore[index]

    def _lookup(self, item_id: str, first: int, last: int) -> list[bytes | None]:
        out: list[bytes | None] = []
        with self._lock:
            for n in range(first, last + 1):
                piece = self._blocks.get((item_id, n))
                if piece is None:
                    self.misses += 1
                else:
                    self.hits += 1
                    self._blocks.move_to_end((item_id, n))
                out.append(piece)
        return out

    def _fill(self, item_id: str, size: int, first: int, last: int, pieces: list, ahead: int) -> None:
        """Fetch each run of missing blocks in one request of at most ``max_fetch`` bytes (the
        last run extended by ``ahead``)."""
        per_request = max(1, self.max_fetch // self.block)
        n = first
        while n <= last:
            if pieces[n - first] is not None:
                n += 1
                continue
            run_end = n
            while run_end + 1 <= last and run_end + 1 - n < per_request and pieces[run_end + 1 - first] is None:
                run_end += 1
            extra = min(ahead // self.block, per_request - 1 - (run_end - n)) if run_end == last else 0
            top = min(run_end + extra, (size - 1) // self.block)
            start, stop = n * self.block, min(size, (top + 1) * self.block)
            raw = self.fetch(item_id, start, stop - 1)
            self.fetched_bytes += len(raw)
            blocks = [raw[at : at + self.block] for at in range(0, len(raw), self.block)]
            for k, piece in enumerate(blocks):
                if n + k <= last:
                    pieces[n + k - first] = piece
            self._store(item_id, n, blocks)
            n = run_end + 1

    def _store(self, item_id: str, first: int, blocks: list[bytes]) -> None:
        with self._lock:
            for k, piece in enumerate(blocks):
                key = (item_id, first + k)
                if key in self._blocks:
                    continue
                self._blocks[key] = piece
                self._held += len(piece)
            while self._held > self.capacity:
                _, dropped = self._blocks.popitem(last=False)
                self._held -= len(dropped)
