"""The evaluation engine: replays a process's schedule through its VM, lazily, deterministically.

Contract
--------
* Assumes: a ``Locator`` (gateway and SUs), a ``ResultStore``, and a VM per
  ``Module-Format`` (``pyao.vm.vm_for``). Knows nothing of HTTP.
* Per process, one hot in-memory instance and the position evaluated so far
  (``Position``: next seq and nonce, SU cursor, hash chain, the last scheduled
  message as the left cron boundary, how far cron ticks went). ``evaluate_to``
  pages the schedule from that position, fetches what a page needs from the
  gateway (assigned items, blocks for cron ticks), and hands the page to the
  process's VM worker, which plans it (``_plan``: msgs per spec §2.4, the hash
  chain of spec §7 — evaluation stops before a broken link with
  ``ScheduleError`` — and cron ticks per spec §6), evaluates it and stores the
  results (``_workers``). Every evaluation, errored ones included, goes to the
  result store; the engine itself does no per-message work.
* One evaluation at a time per process (an asyncio lock each); processes do
  not block each other: instances live on VM workers (``_workers``: OS
  processes, one per core by default, or threads), each process pinned to one.
  If anything fails half-way (an SU or gateway error, a store failure, a lost
  worker), the in-memory process is dropped, so the next call rebuilds it from
  its newest checkpoint; the store is idempotent per (process, seq), so
  nothing is stored twice.
* Checkpoints (``_checkpoints``): after ``checkpoint_every`` evaluations, when
  a process leaves memory and when the CU stops, the VM snapshot and the
  position go to disk; ``_load`` restores the newest one the VM accepts and
  that the result store has caught up with, so a restarted CU goes on from
  there instead of replaying from nonce 0.
* Hot processes stay loaded, least recently used first out once their
  footprints pass ``live_memory`` bytes or their number ``max_live``.
* Dry runs run on a fork made by the worker (a fresh instance restored from a
  snapshot); the live instance and the store are untouched.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from pyao.abc import Devices, EvalResult, Evaluation, Limits, ProcessContext, ResultStore
from pyao.config import CUConfig
from pyao.cu._checkpoints import Checkpoint, CheckpointStore, Position
from pyao.cu._cron import Block, parse_crons
from pyao.cu._locate import Locator, ModuleMeta, ProcessMeta, pairs
from pyao.cu._messages import evaluation_tags, first_tag
from pyao.cu._plan import (
    ProcessPlan,
    assigned_items,
    assignment_tag,
    cron_window,
    initial_position,
    next_hash_chain,
    seed_hash_chain,
)
from pyao.cu._pool import WorkerPool
from pyao.cu._workers import Ran, WorkerLost
from pyao.data import Tag
from pyao.errors import NotFound, ScheduleError, SnapshotError, UnitError
from pyao.vm import limits_for

#: how long the CU waits for an assigned item to reach the gateway before it gives up (503)
ASSIGNED_ITEM_WAIT_S = 10.0

log = logging.getLogger("pyao.cu")


@dataclass
class LiveProcess:
    """A process loaded on a VM worker, and the position it has been evaluated to."""

    meta: ProcessMeta
    module: ModuleMeta
    limits: Limits
    env: dict[str, Any]
    plan: ProcessPlan
    #: where evaluation stands (its ``last`` is kept apart, in ``last``)
    at: Position
    last: Evaluation | None = None
    #: next seq when the last checkpoint was written (or restored)
    checkpointed_seq: int = 0
    #: host memory of the instance, as its worker last reported it
    footprint: int = 0
    #: result-store writes under way (awaited before anything reads the results or checkpoints)
    storing: list = field(default_factory=list)
    #: whether the worker may still be storing pages it answered (``run_page`` with ``more``)
    worker_storing: bool = False

    async def settled(self) -> None:
        """Wait for the result-store writes under way here; the first failure is raised."""
        writes, self.storing = self.storing, []
        if writes:
            await asyncio.gather(*writes)

    @property
    def next_seq(self) -> int:
        return self.at.next_seq

    @property
    def next_nonce(self) -> int:
        return self.at.next_nonce

    @property
    def cursor(self) -> int | None:
        """SU cursor (timestamp ms) of the last scheduled message evaluated."""
        return self.at.cursor

    @property
    def context(self) -> ProcessContext:
        return ProcessContext(self.meta.id, self.meta.owner, pairs(self.meta.tags))

    def position(self) -> Position:
        return replace(self.at, last=None if self.last is None else asdict(self.last))

    def resume_at(self, pos: Position) -> None:
        self.at = replace(pos, last=None)
        self.last = None if pos.last is None else Evaluation.from_fields(pos.last)
        self.checkpointed_seq = pos.next_seq


class _LiveProcesses(OrderedDict):
    """The hot processes (least recently used first) and the sum of their footprints, kept as
    they change: summing them on every evaluation cost O(hot processes) each time."""

    def __init__(self) -> None:
        super().__init__()
        self.footprint = 0

    def __setitem__(self, pid: str, p: LiveProcess) -> None:
        old = self.get(pid)
        self.footprint += p.footprint - (0 if old is None else old.footprint)
        super().__setitem__(pid, p)

    def pop(self, pid: str, *default: Any) -> Any:
        p = super().pop(pid, *default)
        if isinstance(p, LiveProcess):
            self.footprint -= p.footprint
        return p

    def resize(self, p: LiveProcess, footprint: int) -> None:
        """``p``'s footprint is now ``footprint`` (the total follows when ``p`` is the hot one)."""
        if self.get(p.meta.id) is p:
            self.footprint += footprint - p.footprint
        p.footprint = footprint


class Engine:
    """Evaluates processes on demand and stores the results (see the module docstring)."""

    def __init__(self, locator: Locator, store: ResultStore, config: CUConfig, devices: Devices | None = None) -> None:
        """``devices``: device objects for the VMs (then they run on threads of this process, where those
        objects live); None = each VM worker builds the devices ``config.devices`` names."""
        self.locator = locator
        self.store = store
        self.config = config
        self.workers = WorkerPool(config, devices, store.shared_url)
        self.checkpoints = CheckpointStore(config.checkpoint_path) if config.checkpoint_every > 0 else None
        self._store_pool: Executor = ThreadPoolExecutor(1, thread_name_prefix="pyao-cu-store")
        self._disk_pool: Executor = ThreadPoolExecutor(1, thread_name_prefix="pyao-cu-disk")
        #: hot processes, least recently used first
        self._live = _LiveProcesses()
        self._locks: dict[str, asyncio.Lock] = {}
        self._evicting = asyncio.Lock()

    async def close(self) -> None:
        """Checkpoint every process that moved since its last checkpoint, then stop the workers."""
        for pid in list(self._live):
            async with self._lock(pid):
                p = self._live.get(pid)
                if p is not None:
                    await self._checkpoint_quietly(p)
        self.workers.close()
        self._store_pool.shutdown(wait=True)
        self._disk_pool.shutdown(wait=True)

    # ------------------------------------------------------------ plumbing

    async def stored(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a blocking result-store call on the store thread."""
        return await asyncio.get_running_loop().run_in_executor(self._store_pool, lambda: fn(*args, **kwargs))

    async def _on_disk(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._disk_pool, fn, *args)

    def _lock(self, process_id: str) -> asyncio.Lock:
        return self._locks.setdefault(process_id, asyncio.Lock())

    # ------------------------------------------------------------ public face

    async def evaluate_to(
        self,
        process_id: str,
        *,
        nonce: int | None = None,
        timestamp: int | None = None,
        unless: Callable[[], bool] | None = None,
    ) -> None:
        """Evaluate ``process_id`` up to the scheduled message ``nonce`` (at ``timestamp``), or to the
        SU's latest when both are None. Already stored evaluations are not redone. ``unless`` is
        asked once the process is this call's alone: True (what the caller waits for was evaluated
        by the call before it) skips asking the SU again."""
        async with self._lock(process_id):
            if unless is not None and unless():
                return
            live = self._live.get(process_id)
            if nonce is not None and live is not None and live.next_nonce > nonce:
                return
            if nonce is not None and live is None:
                last = await self.stored(self.store.last, process_id)
                if last is not None and last.ordinate >= nonce:
                    return
            await self._guarded(process_id, lambda p: self._catch_up(p, timestamp))
        await self._evict()

    async def live(self, process_id: str, *, trailing_crons: bool = False) -> LiveProcess:
        """The process evaluated to the SU's latest (and its cron ticks up to the SU's clock, if asked)."""
        async with self._lock(process_id):

            async def work(p: LiveProcess) -> None:
                await self._catch_up(p, None)
                if trailing_crons:
                    await self._trailing_crons(p)

            p = await self._guarded(process_id, work)
        await self._evict()
        return p

    async def latest_nonce(self, process_id: str) -> tuple[int, int]:
        """The SU's latest (nonce, timestamp) for the process."""
        meta = await self.meta(process_id)
        node = await self.locator.scheduler(meta.su_url).latest(process_id)
        tags = (node.get("assignment") or {}).get("tags") or []
        return _int(tags, "Nonce"), _int(tags, "Timestamp")

    async def message_slot(self, process_id: str, message_id: str) -> tuple[int, int]:
        """(nonce, timestamp) the SU gave ``message_id`` on ``process_id``."""
        meta = await self.meta(process_id)
        if message_id == process_id:
            return 0, meta.timestamp
        node = await self.locator.scheduler(meta.su_url).message(message_id, process_id)
        tags = (node.get("assignment") or {}).get("tags") or []
        if first_tag(tags, "Process") != process_id:
            raise NotFound(f"message {message_id} is not scheduled on process {process_id}")
        return _int(tags, "Nonce"), _int(tags, "Timestamp")

    def is_live(self, process_id: str) -> bool:
        """Whether the process is loaded (evaluating it further costs no load from a checkpoint)."""
        return process_id in self._live

    async def meta(self, process_id: str) -> ProcessMeta:
        live = self._live.get(process_id)
        if live is not None:
            return live.meta
        return await self.locator.process_meta(process_id)

    async def snapshot(self, process_id: str) -> tuple[bytes, Evaluation | None]:
        """The state after the SU's latest message, and the evaluation it ends with."""
        await self.live(process_id)
        async with self._lock(process_id):
            p = await self._guarded(process_id, _nothing)
            return await self.workers.call("snapshot", process_id), p.last

    async def dry_run(self, process_id: str, message: dict[str, Any]) -> EvalResult:
        """Evaluate ``message`` (a read-only msg, built by the caller) on a fork of the latest state."""
        await self.live(process_id)
        async with self._lock(process_id):
            p = await self._guarded(process_id, _nothing)
            last = p.last
            msg = {
                "Timestamp": last.timestamp if last else p.meta.timestamp,
                "Block-Height": last.block_height if last else p.meta.block_height,
                "Cron": False,
                "Target": process_id,
                **message,
                "Read-Only": True,
            }
            return await self.workers.call("fork_handle", process_id, evaluation_tags(msg), p.env)

    def stats(self) -> dict[str, int]:
        """Hot processes and their memory, for ``GET /``."""
        return {"hot_processes": len(self._live), "hot_bytes": self._live.footprint}

    # ------------------------------------------------------------ loading, checkpoints, eviction

    async def _guarded(self, process_id: str, work: Any) -> LiveProcess:
        """Run ``work`` on the live process; on any failure drop it, so the next call reloads it.
        A lost worker (a crashed OS process) is retried once on a fresh load."""
        for attempt in (1, 2):
            p = self._live.get(process_id)
            if p is None:
                p = await self._load(process_id)
                self._live[process_id] = p
            self._live.move_to_end(process_id)
            try:
                try:
                    await work(p)
                finally:
                    await self._settled(p)  # results are readable when the work returns (or it failed)
                return p
            except WorkerLost:
                self._live.pop(process_id, None)
                if attempt == 2:
                    raise
                log.warning("process %s: its VM worker was lost; reloading it", process_id)
            except BaseException:
                self._live.pop(process_id, None)
                await self.workers.drop(process_id)
                raise
        raise AssertionError("unreachable")

    async def _load(self, process_id: str) -> LiveProcess:
        """The process restored from its newest usable checkpoint, or a fresh instance at nonce 0."""
        meta = await self.locator.process_meta(process_id)
        module = await self.locator.module(meta.module_id)
        limits = limits_for(
            pairs(module.tags),
            pairs(meta.tags),
            max_compute=self.config.max_compute,
            max_memory=self.config.max_memory,
        )
        crons = parse_crons(Tag(t["name"], t["value"]) for t in meta.tags)
        env = {
            "Process": {"Id": meta.id, "Owner": meta.owner, "Tags": meta.tags},
            "Module": {"Id": module.source.id, "Owner": module.source.owner, "Tags": module.tags},
        }
        plan = ProcessPlan(meta.id, meta.owner, crons, Block(meta.block_height, meta.timestamp))
        p = LiveProcess(meta, module, limits, env, plan, initial_position(meta.id))
        for checkpoint in await self._usable_checkpoints(p):
            try:
                p.footprint = await self._load_on_worker(p, checkpoint.snapshot)
            except SnapshotError as exc:
                log.warning("process %s: checkpoint at seq %s refused (%s)", process_id,
                            checkpoint.position.next_seq - 1, exc)  # fmt: skip
                continue
            p.resume_at(checkpoint.position)
            log.info("process %s: restored from checkpoint at nonce %s", process_id, p.next_nonce - 1)
            return p
        p.footprint = await self._load_on_worker(p, None)
        return p

    async def _load_on_worker(self, p: LiveProcess, snapshot: bytes | None) -> int:
        return await self.workers.call("load", p.meta.id, p.module.format, p.module.source, p.context, p.limits,
                                       snapshot, p.plan, p.env)  # fmt: skip

    async def _settled(self, p: LiveProcess) -> None:
        """Every evaluation so far stored, by this process's store thread and by the worker."""
        await p.settled()
        if p.worker_storing:
            recent = await self.workers.call("settle", p.meta.id)
            p.worker_storing = False
            if recent:
                self.store.remember(p.meta.id, recent)

    async def _usable_checkpoints(self, p: LiveProcess) -> list[Checkpoint]:
        """Checkpoints of this process and module that the result store has caught up with, newest first."""
        if self.checkpoints is None:
            return []
        found = await self._on_disk(lambda: list(self.checkpoints.latest(p.meta.id)))
        if not found:
            return []
        last = await self.stored(self.store.last, p.meta.id)
        stored_to = -1 if last is None else last.seq
        return [
            c
            for c in found
            if c.module_id == p.module.source.id
            and c.module_format == p.module.format
            and c.position.next_seq - 1 <= stored_to
        ]

    async def _checkpoint(self, p: LiveProcess) -> None:
        if self.checkpoints is None or p.next_seq == p.checkpointed_seq:
            return
        await self._settled(p)  # a checkpoint is usable only once the store holds the results before it
        snapshot = await self.workers.call("snapshot", p.meta.id)
        checkpoint = Checkpoint(p.meta.id, p.module.source.id, p.module.format, p.position(), snapshot)
        await self._on_disk(self.checkpoints.save, checkpoint)
        p.checkpointed_seq = p.next_seq

    async def _checkpoint_quietly(self, p: LiveProcess) -> None:
        """A checkpoint that may fail (a lost worker, a full disk) without failing the caller."""
        try:
            await self._checkpoint(p)
        except Exception as exc:  # the process can still be replayed; say so and go on
            log.warning("process %s: checkpoint failed: %r", p.meta.id, exc)

    async def _evict(self) -> None:
        """Checkpoint and unload least recently used processes while over ``live_memory`` / ``max_live``."""
        if not self._over_budget() or self._evicting.locked():
            return
        async with self._evicting:
            for pid in list(self._live)[:-1]:  # never the most recently used
                if not self._over_budget():
                    return
                lock = self._lock(pid)
                if lock.locked():
                    continue
                async with lock:
                    p = self._live.get(pid)
                    if p is None:
                        continue
                    await self._checkpoint_quietly(p)
                    self._live.pop(pid, None)
                    await self.workers.drop(pid)
                    log.info("process %s left memory (least recently used)", pid)

    def _over_budget(self) -> bool:
        if len(self._live) > self.config.max_live:
            return True
        return self._live.footprint > self.config.live_memory

    # ------------------------------------------------------------ evaluation

    async def _catch_up(self, p: LiveProcess, to: int | None) -> None:
        """Page the schedule from the last position up to ``to`` (inclusive; None = all) and evaluate it.

        Each call starts one ms before the cursor and skips nonces already done, so a
        message committed later with the same timestamp as the cursor is not missed."""
        su = self.locator.scheduler(p.meta.su_url)
        start = None if p.cursor is None else str(p.cursor - 1)
        if to is not None and p.cursor is not None and to < p.cursor:
            return

        def fetch(from_: str | None) -> Any:
            upto = None if to is None else str(to)
            return su.page(p.meta.id, from_=from_, to=upto, limit=self.config.page_size)

        page = await fetch(start)  # awaited here: most catch-ups are one page (no task for it)
        while True:
            edges = page.get("edges") or []
            more = bool(edges) and bool((page.get("page_info") or {}).get("has_next_page"))
            # the next page is fetched while this one is evaluated
            pending = asyncio.ensure_future(fetch(str(edges[-1]["cursor"]))) if more else None
            try:
                await self._evaluate_page(p, [e["node"] for e in edges], more)
            except BaseException:
                if pending is not None:
                    pending.cancel()
                raise
            if pending is None:
                return
            page = await pending

    async def _evaluate_page(self, p: LiveProcess, nodes: list[dict[str, Any]], more: bool = False) -> None:
        """Fetch what the page needs from the gateway; its VM worker plans, evaluates and stores it
        (``more``: another page follows at once, so the worker may store this one meanwhile)."""
        nodes = _unevaluated(nodes, p.next_nonce)
        if not nodes:
            return
        hydrated = await self._hydrated(assigned_items(nodes))
        window = cron_window(nodes, p.at) if p.plan.crons else None
        blocks = [] if window is None else await self.locator.blocks(*window)
        ran = await self.workers.call("run_page", p.meta.id, p.at, nodes, hydrated, blocks, more)
        p.worker_storing = more and ran.broken is None and ran.unstored is None
        await self._ran(p, ran)
        if ran.broken is not None:
            raise ScheduleError(ran.broken)

    async def _hydrated(self, wanted: list[tuple[str, bool]]) -> dict[str, tuple[dict[str, Any], str | None]]:
        """Gateway metadata (and data, where wanted) of the assigned items, by id."""
        if not wanted:
            return {}
        metas = await self._assigned_items([item for item, _ in wanted])
        hydrated = {}
        for item, with_data in wanted:
            meta = metas.get(item)
            if meta is None:
                raise UnitError(f"assigned item {item} was not found on the gateway")
            data = (await self.locator.gateway.raw(meta["id"])).decode("utf-8", "replace") if with_data else None
            hydrated[item] = (meta, data)
        return hydrated

    async def _assigned_items(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Gateway metadata of assigned items. An SU may assign an item it scheduled itself
        a moment ago and has not uploaded yet, so missing items are waited for, boundedly."""
        found = await self.locator.items(ids)
        delay, waited = 0.05, 0.0
        while len(found) < len(set(ids)) and waited < ASSIGNED_ITEM_WAIT_S:
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 1.0)
            found.update(await self.locator.items([i for i in ids if i not in found]))
        return found

    async def _trailing_crons(self, p: LiveProcess) -> None:
        """Cron ticks after the last scheduled message, up to the SU's clock (minus the lag)."""
        at = p.at
        if not p.plan.crons or at.left_height is None or at.left_timestamp is None:
            return
        now, _height = await self.locator.scheduler(p.meta.su_url).timestamp()
        until = now - self.config.cron_lag_ms
        if until <= max(at.left_timestamp, at.cron_until):
            return
        blocks = await self.locator.blocks(at.left_height, until)
        await self._ran(p, await self.workers.call("run_ticks", p.meta.id, at, until, blocks))

    async def _ran(self, p: LiveProcess, ran: Ran) -> None:
        """Take the worker's answer: the new position, results still to store, a checkpoint when due."""
        p.at = ran.position
        self._live.resize(p, ran.footprint)
        if ran.last is not None:
            p.last = ran.last
        if ran.recent:
            self.store.remember(p.meta.id, ran.recent)
        if ran.unstored:
            # stored while the next page evaluates (the store thread keeps the order); see settled()
            store = asyncio.get_running_loop().run_in_executor(self._store_pool, self.store.put, ran.unstored)
            p.storing.append(store)
        if self.config.checkpoint_every and p.next_seq - p.checkpointed_seq >= self.config.checkpoint_every:
            await self._checkpoint_quietly(p)


async def _nothing(p: LiveProcess) -> None:
    """Work for ``_guarded`` that only makes sure the process is loaded."""


def _unevaluated(nodes: list[dict[str, Any]], next_nonce: int) -> list[dict[str, Any]]:
    """``nodes`` without the leading entries already evaluated (a page starts one ms before the
    cursor, so it usually repeats the last one); the worker reads the rest."""
    for start, node in enumerate(nodes):
        nonce = assignment_tag(node, "Nonce")
        try:
            if int(nonce) >= next_nonce:  # type: ignore[arg-type]
                return nodes[start:] if start else nodes
        except (TypeError, ValueError):
            return nodes[start:]  # the worker says what is wrong with it
    return []


def _int(tags: list[dict[str, str]], name: str) -> int:
    try:
        return int(first_tag(tags, name))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnitError(f"the SU's assignment has no integer {name} tag") from None


__all__ = ["Engine", "LiveProcess", "next_hash_chain", "seed_hash_chain"]
