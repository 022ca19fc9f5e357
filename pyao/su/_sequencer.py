"""Group commit: one task gives every accepted item its slot and writes batches durably.

Contract:

* ``submit`` / ``submit_assign`` resolve with the stored ``ScheduleEntry`` only
  after the batch holding it is committed; they raise ``PyaoError`` when the
  item cannot be scheduled (duplicate, unknown process) or when the commit
  failed (``StoreError``: nothing of that batch was stored).
* One task (``run``) takes whatever is queued, up to ``max_batch`` requests,
  and moves each batch through two stages, each ONE job on its own thread:

  1. the *slotter* looks up in one store round trip what the batch needs (the
     last slot of each process it knows nothing of, which ids, pairs and deep
     hashes exist), then slots and signs the requests in arrival order;
  2. the *writer* writes the batch in ONE transaction together with its
     outbox records, and then the futures are resolved.

  The stages overlap: batch k+1 is slotted and signed while batch k commits.
  Batches still commit one at a time, in slot order, and k+1 is handed to the
  writer only after k's commit is settled. Many entries of one process share a
  batch in order; entries of different processes never wait on a lock of one
  another, only on the shared commit.
* State: ``_states`` holds the last committed slot of recently seen processes;
  ``_pending`` the last slotted-but-uncommitted one, and ``_inflight_*`` the
  ids, pairs and deep hashes of uncommitted batches, so a batch slotted while
  its predecessor commits continues from it and sees its duplicates. A
  successful commit moves its slots into ``_states``. A failed commit clears
  ``_pending`` and ``_inflight_*`` and bumps ``_generation``: a batch slotted
  on top of the failed one is slotted again, from what is really stored,
  before it is written. So a failed commit leaves no gap and no stale state,
  and fails only its own batch. The threads share this state under ``_lock``
  (held for bookkeeping only, never across a store call or a signature).
* The writer's commit (an fsync) runs without the GIL, so it overlaps the event
  loop. Slotting is mostly Python and a signature: with a fast signer (ed25519,
  ~19 µs) the slotter thread overlaps little and adds two hand-offs and GIL
  ping-pong per batch, so a batch of at most ``slot_inline`` requests is slotted
  on the event loop itself (a bound on how long it holds the loop: ~60 µs a
  request); larger batches, and every batch of a slow signer (RSA: ~1.5 ms a
  signature, without the GIL), go to the slotter thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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


Request = Intake | AssignRequest


@dataclass(slots=True)
class _Pending:
    request: Request
    future: asyncio.Future


@dataclass(slots=True)
class _Lookups:
    latest: dict[str, ScheduleEntry]
    ids: set[str]
    pairs: set[tuple[str, str]]
    deep_hashes: set[tuple[str, str]]


@dataclass(slots=True)
class _Slotted:
    """A batch after the slotter: one result per request, and what the writer must commit."""

    generation: int
    results: list[ScheduleEntry | PyaoError]
    overlay: dict[str, ScheduleEntry] = field(default_factory=dict)
    ids: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    deep_hashes: set[tuple[str, str]] = field(default_factory=set)

    @property
    def accepted(self) -> list[ScheduleEntry]:
        return [r for r in self.results if isinstance(r, ScheduleEntry)]


class Sequencer:
    def __init__(
        self,
        store: ScheduleStore,
        signer: Signer,
        *,
        writer: ThreadPoolExecutor,
        slotter: ThreadPoolExecutor,
        clock: Callable[[], int] = wall_clock_ms,
        max_batch: int = 1000,
        slot_inline: int = 0,
        cache_size: int = 100_000,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.block_height = 0
        self._written_height: int | None = None
        self._writer = writer
        self._slotter = slotter
        self._clock = clock
        self._max_batch = max_batch
        self._slot_inline = slot_inline
        self._cache_size = cache_size
        self._on_commit = on_commit
        self._queue: deque[_Pending] = deque()
        self._wake = asyncio.Event()
        self._lock = threading.Lock()
        self._generation = 0
        self._states: dict[str, ScheduleEntry] = {}
        self._pending: dict[str, ScheduleEntry] = {}
        self._inflight_ids: set[str] = set()
        self._inflight_pairs: set[tuple[str, str]] = set()
        self._inflight_hashes: set[tuple[str, str]] = set()
        self._closed = False
        self.batches = 0  # committed batches, for tests and benchmarks

    # ---------------------------------------------------------- submitting

    async def submit(self, intake: Intake) -> ScheduleEntry:
        return await self._enqueue(intake)

    async def submit_assign(self, request: AssignRequest) -> ScheduleEntry:
        return await self._enqueue(request)

    async def _enqueue(self, request: Request) -> ScheduleEntry:
        if self._closed:
            raise StoreError("the scheduler is shutting down")
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(request, future))
        self._wake.set()
        return await future

    async def _in(self, executor: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    async def _slotted(self, requests: list[Request]) -> _Slotted:
        """Slot a batch: on the event loop when small enough (see the contract), else on the slotter."""
        if len(requests) <= self._slot_inline:
            return self._slot_batch(requests)
        return await self._in(self._slotter, self._slot_batch, requests)

    async def write_uploads(self, raws: list[bytes]) -> None:
        """Durably queue standalone items (the Scheduler-Location record) for upload."""
        await self._in(self._writer, self.store.write_batch, [], raws, None)
        if self._on_commit:
            self._on_commit()

    # ---------------------------------------------------------- the commit loop

    async def run(self) -> None:
        committing: asyncio.Task | None = None
        try:
            while True:
                if not self._queue:
                    self._wake.clear()
                    await self._wake.wait()
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
                batch = [p for p in batch if not p.future.done()]
                if not batch:
                    continue
                requests = [p.request for p in batch]
                try:
                    slotted = await self._slotted(requests)
                    if committing is not None:
                        await committing  # the previous batch is settled (committed or failed)
                        committing = None
                    if slotted.generation != self._generation:  # slotted on a batch whose commit failed
                        slotted = await self._slotted(requests)
                except Exception as exc:  # a bug in the slotter: fail this batch, keep scheduling
                    log.exception("slotting a batch failed unexpectedly")
                    if committing is not None:
                        await committing
                        committing = None
                    self._forget_pending()  # start again from what is stored
                    _fail(batch, StoreError(f"scheduling failed: {exc}"))
                    continue
                committing = asyncio.create_task(self._commit(batch, slotted))
        finally:
            self._closed = True
            if committing is not None and not committing.done():
                committing.cancel()
            while self._queue:
                pending = self._queue.popleft()
                if not pending.future.done():
                    pending.future.set_exception(StoreError("the scheduler stopped"))

    async def _commit(self, batch: list[_Pending], slotted: _Slotted) -> None:
        try:
            committed = False
            if slotted.overlay:
                try:
                    committed = await self._in(self._writer, self._write, slotted)
                except Exception as exc:  # a bug in the writer job: fail what it was to commit
                    log.exception("schedule batch failed unexpectedly")
                    self._forget_pending()
                    error = StoreError(f"schedule store failed: {exc}")
                    slotted.results = [error if isinstance(r, ScheduleEntry) else r for r in slotted.results]
            for pending, result in zip(batch, slotted.results, strict=True):
                if pending.future.done():
                    continue
                if isinstance(result, BaseException):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            if committed and self._on_commit:
                self._on_commit()
        finally:  # cancelled (the unit stops): nobody is left waiting
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StoreError("the scheduler stopped"))

    # ---------------------------------------------------------- stage 1: the slotter thread

    def _slot_batch(self, requests: list[Request]) -> _Slotted:
        """Check, slot and sign one batch on top of the committed and the pending state."""
        with self._lock:
            generation = self._generation
            known = {r.process_id: self._pending.get(r.process_id) or self._states.get(r.process_id) for r in requests}
            ids = {r.item.id for r in requests if isinstance(r, Intake)} & self._inflight_ids
            pairs = {(r.process_id, r.tx_id) for r in requests if isinstance(r, AssignRequest)} & self._inflight_pairs
            hashes = {(r.process_id, r.deep_hash) for r in requests if isinstance(r, Intake) and r.deep_hash}
            hashes &= self._inflight_hashes
        slotted = _Slotted(generation, [])
        try:
            lookups = self._lookup(requests, [pid for pid, entry in known.items() if entry is None])
        except PyaoError as exc:
            slotted.results = [exc] * len(requests)
            return slotted
        lookups.latest.update((pid, entry) for pid, entry in known.items() if entry is not None)
        lookups.ids |= ids
        lookups.pairs |= pairs
        lookups.deep_hashes |= hashes
        for request in requests:
            try:
                entry = self._slot(request, lookups, slotted)
            except PyaoError as exc:
                slotted.results.append(exc)
                continue
            slotted.overlay[entry.process_id] = entry
            slotted.results.append(entry)
        with self._lock:
            if generation == self._generation:  # else the loop slots the batch again
                self._pending.update(slotted.overlay)
                self._inflight_ids |= slotted.ids
                self._inflight_pairs |= slotted.pairs
                self._inflight_hashes |= slotted.deep_hashes
        return slotted

    def _lookup(self, requests: list[Request], unknown: list[str]) -> _Lookups:
        """One trip to the store: everything the batch's checks need that memory does not know."""
        new_ids = [r.item.id for r in requests if isinstance(r, Intake)]
        pairs = [(r.process_id, r.tx_id) for r in requests if isinstance(r, AssignRequest)]
        hashes = [(r.process_id, r.deep_hash) for r in requests if isinstance(r, Intake) and r.deep_hash]
        return _Lookups(
            latest=self.store.latest(sorted(set(unknown))) if unknown else {},
            ids=self.store.existing_ids(new_ids) if new_ids else set(),
            pairs=self.store.existing_pairs(pairs) if pairs else set(),
            deep_hashes=self.store.existing_deep_hashes(hashes) if hashes else set(),
        )

    def _slot(self, request: Request, lookups: _Lookups, slotted: _Slotted) -> ScheduleEntry:
        """Check one request against the store and the batch so far, then sign its slot."""
        pid = request.process_id
        previous = slotted.overlay.get(pid) or lookups.latest.get(pid)
        if isinstance(request, AssignRequest):
            if previous is None:
                raise NotFound(f"Process {pid} not found on this SU")
            pair = (pid, request.tx_id)
            if pair in lookups.pairs:
                raise Conflict(f"{request.tx_id} is already scheduled on {pid}")
            lookups.pairs.add(pair)
            slotted.pairs.add(pair)
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
        slotted.ids.add(item_id)
        if request.deep_hash:
            lookups.deep_hashes.add((pid, request.deep_hash))
            slotted.deep_hashes.add((pid, request.deep_hash))
        slot = next_slot(previous if request.kind == MESSAGE else None, pid, self._clock())
        return build_entry(
            self.signer, slot, process_id=pid, block_height=self.block_height, kind=request.kind,
            message_id=item_id, message=request.raw, deep_hash=request.deep_hash,
        )  # fmt: skip

    # ---------------------------------------------------------- stage 2: the writer thread

    def _write(self, slotted: _Slotted) -> bool:
        """Commit one slotted batch; on failure its results become the error. True if committed."""
        accepted = slotted.accepted
        height = self.block_height if self.block_height != self._written_height else None
        try:
            self.store.write_batch(accepted, [], height)
        except Exception as exc:  # nothing of the batch is stored
            if isinstance(exc, PyaoError):
                log.error("schedule batch of %d entries failed: %s", len(accepted), exc)
                error: PyaoError = exc
            else:  # a driver bug: still fail the batch, never leave a gap in memory
                log.exception("schedule batch failed unexpectedly")
                error = StoreError(f"schedule store failed: {exc}")
            self._forget_pending()
            slotted.results = [error if isinstance(r, ScheduleEntry) else r for r in slotted.results]
            return False
        if height is not None:
            self._written_height = height
        with self._lock:
            if len(self._states) + len(slotted.overlay) > self._cache_size:
                self._states.clear()
            self._states.update(slotted.overlay)
            for pid, entry in slotted.overlay.items():
                if self._pending.get(pid) is entry:
                    del self._pending[pid]
            self._inflight_ids -= slotted.ids
            self._inflight_pairs -= slotted.pairs
            self._inflight_hashes -= slotted.deep_hashes
        self.batches += 1
        return True

    def _forget_pending(self) -> None:
        """After a failed commit: what memory holds beyond the store is void; later batches re-slot."""
        with self._lock:
            self._generation += 1
            self._pending.clear()
            self._inflight_ids.clear()
            self._inflight_pairs.clear()
            self._inflight_hashes.clear()


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)
