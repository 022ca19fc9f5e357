"""Group commit: one task gives every accepted item its slot and writes batches durably.

Contract:

* ``submit`` / ``submit_assign`` resolve with the stored ``ScheduleEntry`` only
  after the batch holding it is committed; they raise ``PyaoError`` when the
  item cannot be scheduled (duplicate, unknown process) or when the commit
  failed (``StoreError``: nothing of that batch was stored).
* One task (``run``) takes whatever is queued, up to ``max_batch`` requests:
  it looks up in one store round trip what the batch needs (the last slot of
  each process it has not cached, which ids, pairs and deep hashes exist),
  then slots and signs the requests in arrival order, and writes them in ONE
  transaction together with their outbox records. Many entries of one process
  share a batch in order; entries of different processes never wait on a
  lock of one another, only on the shared commit.
* Slots are computed on an overlay of the cached state, and the cache takes the
  overlay only after the commit succeeded, so a failed commit leaves no gap and
  no stale state: the next batch continues from what is really stored.
* While one batch commits (in the writer thread, where SQLite and PostgreSQL
  release the GIL), the event loop keeps parsing and verifying the next requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyao.abc import ScheduleStore, Signer
from pyao.errors import Conflict, NotFound, PyaoError, StoreError
from pyao.su._core import ASSIGNED, MESSAGE, Intake, ScheduleEntry, build_entry, next_slot

log = logging.getLogger("pyao.su")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class AssignRequest:
    """Assign the existing tx ``tx_id`` to ``process_id``."""

    process_id: str
    tx_id: str
    exclude: tuple[str, ...] = ()


@dataclass(slots=True)
class _Pending:
    request: Intake | AssignRequest
    future: asyncio.Future


@dataclass(slots=True)
class _Lookups:
    latest: dict[str, ScheduleEntry]
    ids: set[str]
    pairs: set[tuple[str, str]]
    deep_hashes: set[tuple[str, str]]


class Sequencer:
    def __init__(
        self,
        store: ScheduleStore,
        signer: Signer,
        *,
        writer: ThreadPoolExecutor,
        clock: Callable[[], int] = wall_clock_ms,
        max_batch: int = 1000,
        cache_size: int = 100_000,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.block_height = 0
        self._written_height: int | None = None
        self._writer = writer
        self._clock = clock
        self._max_batch = max_batch
        self._cache_size = cache_size
        self._on_commit = on_commit
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._states: dict[str, ScheduleEntry] = {}
        self._closed = False
        self.batches = 0  # committed batches, for tests and benchmarks

    # ---------------------------------------------------------- submitting

    async def submit(self, intake: Intake) -> ScheduleEntry:
        return await self._enqueue(intake)

    async def submit_assign(self, request: AssignRequest) -> ScheduleEntry:
        return await self._enqueue(request)

    async def _enqueue(self, request: Intake | AssignRequest) -> ScheduleEntry:
        if self._closed:
            raise StoreError("the scheduler is shutting down")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(request, future))
        self._wake.set()
        return await future

    async def _in_writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def write_uploads(self, raws: list[bytes]) -> None:
        """Durably queue standalone items (the Scheduler-Location record) for upload."""
        await self._in_writer(self.store.write_batch, [], raws, None)
        if self._on_commit:
            self._on_commit()

    # ---------------------------------------------------------- the commit loop

    async def run(self) -> None:
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
                batch = [p for p in batch if not p.future.done()]
                if batch:
                    await self._commit(batch)
        finally:
            self._closed = True
            while self._queue:
                pending = self._queue.popleft()
                if not pending.future.done():
                    pending.future.set_exception(StoreError("the scheduler stopped"))

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            lookups = await self._in_writer(self._lookup, [p.request for p in batch])
        except PyaoError as exc:
            _fail(batch, exc)
            return
        overlay: dict[str, ScheduleEntry] = {}
        accepted: list[tuple[_Pending, ScheduleEntry]] = []
        for pending in batch:
            try:
                entry = self._slot(pending.request, lookups, overlay)
            except PyaoError as exc:
                if not pending.future.done():
                    pending.future.set_exception(exc)
                continue
            overlay[entry.process_id] = entry
            accepted.append((pending, entry))
        if not accepted:
            return
        height = self.block_height if self.block_height != self._written_height else None
        try:
            await self._in_writer(self.store.write_batch, [e for _, e in accepted], [], height)
        except PyaoError as exc:
            log.error("schedule batch of %d entries failed: %s", len(accepted), exc)
            _fail([p for p, _ in accepted], exc)
            return
        except Exception as exc:  # a driver bug: still fail the batch, never leave a gap in memory
            log.exception("schedule batch failed unexpectedly")
            _fail([p for p, _ in accepted], StoreError(f"schedule store failed: {exc}"))
            return
        if height is not None:
            self._written_height = height
        if len(self._states) + len(overlay) > self._cache_size:
            self._states.clear()
        self._states.update(overlay)
        self.batches += 1
        for pending, entry in accepted:
            if not pending.future.done():
                pending.future.set_result(entry)
        if self._on_commit:
            self._on_commit()

    def _lookup(self, requests: list[Intake | AssignRequest]) -> _Lookups:
        """One trip to the store (writer thread): everything the batch's checks need."""
        pids = {r.process_id for r in requests} - self._states.keys()
        new_ids = [r.item.id for r in requests if isinstance(r, Intake)]
        pairs = [(r.process_id, r.tx_id) for r in requests if isinstance(r, AssignRequest)]
        hashes = [(r.process_id, r.deep_hash) for r in requests if isinstance(r, Intake) and r.deep_hash]
        return _Lookups(
            latest=self.store.latest(sorted(pids)) if pids else {},
            ids=self.store.existing_ids(new_ids) if new_ids else set(),
            pairs=self.store.existing_pairs(pairs) if pairs else set(),
            deep_hashes=self.store.existing_deep_hashes(hashes) if hashes else set(),
        )

    def _slot(
        self, request: Intake | AssignRequest, lookups: _Lookups, overlay: dict[str, ScheduleEntry]
    ) -> ScheduleEntry:
        """Check one request against the store and the batch so far, then sign its slot."""
        pid = request.process_id
        previous = overlay.get(pid) or self._states.get(pid) or lookups.latest.get(pid)
        if isinstance(request, AssignRequest):
            if previous is None:
                raise NotFound(f"Process {pid} not found on this SU")
            if (pid, request.tx_id) in lookups.pairs:
                raise Conflict(f"{request.tx_id} is already scheduled on {pid}")
            lookups.pairs.add((pid, request.tx_id))
            slot = next_slot(previous, pid, self._clock())
            return build_entry(
                self.signer, slot, process_id=pid, block_height=self.block_height, kind=ASSIGNED,
                message_id=request.tx_id, exclude=request.exclude,
            )  # fmt: skip
        item_id = request.item.id
        if item_id in lookups.ids:
            raise Conflict(f"Message {item_id} already exists")
        if request.kind == MESSAGE and previous is None:
            raise NotFound(f"Process {pid} not found on this SU")
        if request.deep_hash and (pid, request.deep_hash) in lookups.deep_hashes:
            raise Conflict("Deep hash already exists: this pushed message is already scheduled")
        lookups.ids.add(item_id)
        if request.deep_hash:
            lookups.deep_hashes.add((pid, request.deep_hash))
        slot = next_slot(previous if request.kind == MESSAGE else None, pid, self._clock())
        return build_entry(
            self.signer, slot, process_id=pid, block_height=self.block_height, kind=request.kind,
            message_id=item_id, message=request.raw, deep_hash=request.deep_hash,
        )  # fmt: skip


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)
