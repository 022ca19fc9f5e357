"""The durable outbox to the gateway: every committed slot reaches the permanent store, eventually.

Contract: the sequencer writes an outbox record in the same transaction as each
slot (and one for the Scheduler-Location record), so after a crash the
uploader finds exactly what is still owed. It reads the oldest records, packs
them in bundles signed by the SU (below), posts each to ``{gateway}/tx/arweave``
with bounded concurrency, and deletes the records that arrived. A gateway that
is down is retried with exponential backoff (0.2 s … 30 s); a gateway that
refuses an upload (4xx) will refuse it forever, so the record is dropped with
an error in the log rather than blocking the records behind it. Uploads may repeat after a crash (the record
is deleted after the upload); the gateway stores an item id once. Under a
steady flow the uploader lingers ``linger`` seconds (0.1) between rounds that
did not fill a read, so records go in few large requests and few deletions.

The shape: one request carries one ANS-104 bundle item signed by the SU,
holding, in outbox (slot) order, each slot's assignment followed directly by
the item it schedules: ``[assignment_1, item_1, assignment_2, item_2, …]``
(an assignment of an existing tx contributes ``[assignment]`` alone), at most
``per_upload`` slots and ``MAX_UPLOAD_BYTES`` per request. One slot alone is
exactly the official SU's ``[assignment, item]`` bundle. So the assignment and
the message are stored as a bundle on the gateway, next to each other, and
GraphQL's ``bundledIn`` of either is a bundle signed by the SU. (Earlier each
slot had its own SU-signed ``[assignment, item]`` bundle nested inside the
request's bundle; no consumer reads a slot bundle's id, and the per-slot
signature was a third of the SU's crypto per message.) A standalone record
(the Scheduler-Location item) rides in the same bundle as itself when slots
are pending, and alone is uploaded as itself.

The bundle is built straight from the stored bytes (ids are the sha256 of each
item's signature) on a worker thread, so the event loop only posts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyao.abc import ScheduleStore, Signer
from pyao.client import GatewayClient
from pyao.data import BUNDLE_TAGS, DataItem, scheme_for
from pyao.errors import RequestError, UnitError
from pyao.su._core import ScheduleEntry

log = logging.getLogger("pyao.su.uploader")

#: one upload request carries at most this many bytes of slots (a single larger slot goes alone)
MAX_UPLOAD_BYTES = 8 * 1024 * 1024


def upload_body(records: list[ScheduleEntry | bytes], signer: Signer) -> bytes:
    """What one upload request posts: a lone standalone item as itself, else one SU-signed bundle
    of every record's items in order (a slot gives ``assignment, item``)."""
    if len(records) == 1 and isinstance(records[0], bytes):
        return records[0]
    raws: list[bytes] = []
    for record in records:
        if isinstance(record, bytes):
            raws.append(record)
        else:
            raws.append(record.assignment)
            if record.message is not None:
                raws.append(record.message)
    return DataItem.create(bundle_bytes(raws), signer=signer, tags=BUNDLE_TAGS).to_bytes()


def entry_bundle(entry: ScheduleEntry, signer: Signer) -> bytes:
    """The signed bundle item that stores one slot on the gateway: ``[assignment, item]``."""
    return upload_body([entry], signer)


def bundle_bytes(raws: list[bytes]) -> bytes:
    """An ANS-104 binary bundle of already serialised, well-formed items (as ``Bundle.to_bytes``)."""
    header = [len(raws).to_bytes(32, "little")]
    for raw in raws:
        signature_length = scheme_for(raw[0] | raw[1] << 8).signature_length
        header.append(len(raw).to_bytes(32, "little"))
        header.append(hashlib.sha256(raw[2 : 2 + signature_length]).digest())
    return b"".join(header + raws)


class Uploader:
    def __init__(
        self,
        store: ScheduleStore,
        signer: Signer,
        gateway: GatewayClient,
        *,
        reader: ThreadPoolExecutor,
        writer: ThreadPoolExecutor,
        batch: int = 512,
        per_upload: int = 128,
        concurrency: int = 4,
        linger: float = 0.1,
    ) -> None:
        self.store = store
        self.signer = signer
        self.gateway = gateway
        self._reader = reader
        self._writer = writer
        self._batch = batch
        self._per_upload = per_upload
        self._linger = linger
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
                # not wait_for: on Python 3.11 it swallows a cancel that arrives as the event is
                # set (a commit), and this loop would outlive the SU's shutdown
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._wake.wait()
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
                if len(rows) < self._batch:  # let the next records gather: few large uploads, few deletions
                    await asyncio.sleep(self._linger)

    async def _upload_all(self, rows: list[tuple[int, Any]]) -> tuple[list[int], bool]:
        chunks = _chunks(rows, self._per_upload, MAX_UPLOAD_BYTES)
        results = await asyncio.gather(*(self._upload_chunk(chunk) for chunk in chunks))
        done = [seq for chunk, ok in zip(chunks, results, strict=True) if ok for seq, _ in chunk]
        return done, len(done) < len(rows)

    async def _upload_chunk(self, chunk: list[tuple[int, Any]]) -> bool:
        """Upload records in one request (``upload_body``); on a refusal, find the refused record."""
        async with self._limit:
            try:
                raw = await self._run_in(self._reader, upload_body, [w for _, w in chunk], self.signer)
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
