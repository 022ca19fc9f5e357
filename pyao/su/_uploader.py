"""The durable outbox to the gateway: every committed slot reaches the permanent store, eventually.

Contract: the sequencer writes an outbox record in the same transaction as each
slot (and one for the Scheduler-Location record), so after a crash the
uploader finds exactly what is still owed. It reads the oldest records, wraps
each slot as the official SU does (a bundle item signed by the SU holding
``[assignment, item]``, or ``[assignment]`` for an assignment of an existing
tx), posts it to ``{gateway}/tx/arweave`` with bounded concurrency, and deletes
the records that arrived. A gateway that is down is retried with exponential
backoff (0.2 s … 30 s); a gateway that refuses an upload (4xx) will refuse it
forever, so the record is dropped with an error in the log rather than
blocking the records behind it. Uploads may repeat after a crash (the record
is deleted after the upload); the gateway stores an item id once.

Several slots go in one request: their bundles are wrapped in one outer bundle
(ANS-104 nested bundles; gateways unbundle them recursively), at most
``per_upload`` slots and ``MAX_UPLOAD_BYTES`` per request. Each slot keeps its
own ``[assignment, item]`` bundle, signed by the SU, inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyao.abc import ScheduleStore, Signer
from pyao.client import GatewayClient
from pyao.data import Bundle, DataItem
from pyao.errors import RequestError, UnitError
from pyao.su._core import ScheduleEntry

log = logging.getLogger("pyao.su.uploader")

#: one upload request carries at most this many bytes of slots (a single larger slot goes alone)
MAX_UPLOAD_BYTES = 8 * 1024 * 1024


def entry_bundle(entry: ScheduleEntry, signer: Signer) -> bytes:
    """The signed bundle item that stores one slot on the gateway."""
    items = [DataItem.from_bytes(entry.assignment)]
    if entry.message is not None:
        items.append(DataItem.from_bytes(entry.message))
    return Bundle.of(items).to_item(signer).to_bytes()


class Uploader:
    def __init__(
        self,
        store: ScheduleStore,
        signer: Signer,
        gateway: GatewayClient,
        *,
        reader: ThreadPoolExecutor,
        writer: ThreadPoolExecutor,
        batch: int = 256,
        per_upload: int = 64,
        concurrency: int = 4,
    ) -> None:
        self.store = store
        self.signer = signer
        self.gateway = gateway
        self._reader = reader
        self._writer = writer
        self._batch = batch
        self._per_upload = per_upload
        self._limit = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self.uploaded = 0
        self.refused = 0

    def notify(self) -> None:
        self._wake.set()

    async def _run_in(self, executor: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                rows = await self._run_in(self._reader, self.store.outbox, self._batch)
            except Exception:
                log.exception("cannot read the upload outbox")
                rows = []
            if not rows:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                continue
            done, failed = await self._upload_all(rows)
            if done:
                try:
                    await self._run_in(self._writer, self.store.outbox_done, done)
                except Exception:
                    log.exception("cannot clear uploaded outbox records")
            if failed:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
            else:
                backoff = 0.2

    async def _upload_all(self, rows: list[tuple[int, Any]]) -> tuple[list[int], bool]:
        chunks = _chunks(rows, self._per_upload, MAX_UPLOAD_BYTES)
        results = await asyncio.gather(*(self._upload_chunk(chunk) for chunk in chunks))
        done = [seq for chunk, ok in zip(chunks, results, strict=True) if ok for seq, _ in chunk]
        return done, len(done) < len(rows)

    async def _upload_chunk(self, chunk: list[tuple[int, Any]]) -> bool:
        """Upload records in one request: one record as itself, several wrapped in one outer bundle."""
        async with self._limit:
            try:
                items = [w if isinstance(w, bytes) else entry_bundle(w, self.signer) for _, w in chunk]
                if len(items) == 1:
                    raw = items[0]
                else:
                    raw = Bundle.of(DataItem.from_bytes(i) for i in items).to_item(self.signer).to_bytes()
                await self.gateway.upload(raw)
            except RequestError as exc:
                if len(chunk) > 1:  # find the one the gateway refuses; keep the others
                    return all([await self._upload_chunk([record]) for record in chunk])
                log.error("gateway refused outbox record %d; dropping it: %s", chunk[0][0], exc)
                self.refused += 1
                return True
            except UnitError as exc:
                log.warning("gateway upload of %d outbox records failed, will retry: %s", len(chunk), exc)
                return False
            except Exception:
                log.exception("upload of %d outbox records failed, will retry", len(chunk))
                return False
            self.uploaded += len(chunk)
            return True


def _chunks(rows: list[tuple[int, Any]], count: int, size: int) -> list[list[tuple[int, Any]]]:
    chunks: list[list[tuple[int, Any]]] = []
    current: list[tuple[int, Any]] = []
    current_size = 0
    for seq, what in rows:
        n = len(what) if isinstance(what, bytes) else len(what.assignment) + len(what.message or b"")
        if current and (len(current) >= count or current_size + n > size):
            chunks.append(current)
            current, current_size = [], 0
        current.append((seq, what))
        current_size += n
    if current:
        chunks.append(current)
    return chunks
