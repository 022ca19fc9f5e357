"""The crank worker: runs the durable jobs of ``_core`` against the CU, the SUs and the gateway.

Contract:

* Each job runs at most once at a time in this MU. Its output (the next jobs)
  is recorded in the same transaction that forgets it, so after a crash a job
  is either still pending (and is run again) or done with its successors
  recorded: no step is lost, and none is skipped.
* Delivery is at least once; the SU refuses a duplicate (same id, or a pushed
  message with the same deep hash), and that answer counts as success. Signed
  items are made by one job and sent by the next, so a retried send re-sends
  the very same bytes (even with an RSA wallet, whose signatures are salted).
* A failed attempt is retried with exponential backoff (``retry_base_s``,
  doubled, capped at ``retry_cap_s``); a job never blocks another. After
  ``max_attempts`` attempts, or at once on input that can never work (a bad
  anchor, a spawn without Module), the job is kept as ``failed``
  (``GET /?debug`` lists them).

Side effects: HTTP calls to the CU, SUs and gateway; writes to the store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyao.abc import MessengerStore, Signer
from pyao.client import ComputeClient, GatewayClient, SchedulerLocator
from pyao.config import MUConfig
from pyao.data import DataItem
from pyao.errors import DataError, NotFound, PyaoError, RequestError
from pyao.mu import _core as core
from pyao.mu._core import Job

log = logging.getLogger("pyao.mu")


def encode_item(item: DataItem) -> str:
    return base64.b64encode(item.to_bytes()).decode()


def decode_item(text: str) -> DataItem:
    return DataItem.from_bytes(base64.b64decode(text))


class Processes:
    """What the MU knows of processes: its own records first, then the gateway, then an SU."""

    def __init__(self, store: Any, locator: SchedulerLocator) -> None:
        self.store = store  # an AsyncStore
        self.locator = locator
        self._cache: dict[str, tuple[str, str]] = {}

    async def remember(self, process_id: str, scheduler: str, module: str) -> None:
        self._cache[process_id] = (scheduler, module)
        await self.store.call("remember_process", process_id, scheduler, module)

    async def find(self, process_id: str, *, ask_su: str | None = None) -> tuple[str, str] | None:
        """``(scheduler address, module)`` of a process, or None when nothing knows it as a process
        (a wallet, or an id nobody has). ``ask_su``: an SU url to ask last (a process just scheduled
        may not be on the gateway yet). An id that exists but is not a process raises RequestError."""
        if process_id in self._cache:
            return self._cache[process_id]
        known = await self.store.call("process", process_id)
        if known is None:
            known = await self._from_gateway(process_id)
        if known is None and ask_su:
            known = await self._from_su(process_id, ask_su)
        if known is not None:
            self._cache[process_id] = known
        return known

    async def _from_gateway(self, process_id: str) -> tuple[str, str] | None:
        node = await self.locator.process(process_id)
        if node is None:
            return None
        tags = {t["name"]: t["value"] for t in reversed(node["tags"])}
        if tags.get("Type") != "Process" or not tags.get("Scheduler"):
            raise RequestError(f"{process_id} is neither an ao process nor a wallet")
        return tags["Scheduler"], tags.get("Module", "")

    async def _from_su(self, process_id: str, su_url: str) -> tuple[str, str] | None:
        try:
            meta = await self.locator.scheduler(su_url).process(process_id)
        except NotFound:
            return None
        tags = {t["name"]: t["value"] for t in reversed(meta.get("tags") or [])}
        if not tags.get("Scheduler"):
            return None
        return tags["Scheduler"], tags.get("Module", "")

    async def su_url(self, process_id: str) -> str:
        known = await self.find(process_id)
        if known is None:
            raise NotFound(f"process {process_id} was not found")
        return await self.locator.scheduler_url(known[0])


class AsyncStore:
    """Runs the blocking store on one thread, so its connection is never shared.

    ``add`` and ``complete`` are group-committed: calls that arrive while a write is on
    the thread wait for the next one, which runs them all, in arrival order, in one
    transaction (``MessengerStore.write_batch``). Each caller returns only once its own
    write is durable, so a job's successors are never acknowledged before they are
    stored; a burst costs one fsync per batch instead of one per call."""

    def __init__(self, store: MessengerStore) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pyao-mu-store")
        self._queue: list[tuple[str, tuple[Any, ...], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None

    async def call(self, name: str, *args: Any) -> Any:
        if name in ("add", "complete"):
            return await self._grouped(name, args)
        fn = getattr(self.store, name)
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args))

    async def _grouped(self, name: str, args: tuple[Any, ...]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._queue.append((name, args, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="pyao-mu-group-commit")
        await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            ops = [(name, args) for name, args, _ in batch]
            try:
                await loop.run_in_executor(self._pool, self.store.write_batch, ops)
            except BaseException as exc:  # every waiter of this batch learns it failed
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
                if not isinstance(exc, Exception):
                    raise
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.store.close()


class Cranker:
    """Picks due jobs and runs up to ``config.workers`` of them at a time.

    A job just stored (``hand``: a new message's crank, a finished job's children) is handed
    over in memory as well, so a burst needs no ``due`` query per job; the durable row stays
    the truth (a restarted MU finds it with ``due``). The store is asked for due jobs at start,
    after ``notify`` (jobs stored elsewhere: cron), when a retry this cranker stored falls due,
    and at least every ``DB_POLL_S``, so no stored job is starved. A job is never started twice
    at once: one taken from the store leaves the in-memory set, and running ids are skipped."""

    #: the longest the store goes unasked for due jobs (a safety net: new work is handed or notified)
    DB_POLL_S = 1.0

    def __init__(
        self,
        config: MUConfig,
        store: AsyncStore,
        signer: Signer,
        locator: SchedulerLocator,
        processes: Processes,
        compute: ComputeClient,
        gateway: GatewayClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.signer = signer
        self.locator = locator
        self.processes = processes
        self.compute = compute
        self.gateway = gateway
        self.clock = clock
        self._wake = asyncio.Event()
        self._running: dict[str, asyncio.Task] = {}
        self._ready: OrderedDict[str, Job] = OrderedDict()  # stored, due, not started: in arrival order
        self._asked_at = float("-inf")  # monotonic time of the last due/next_due query
        self._must_ask = True  # jobs may be stored that were not handed over: ask the store
        self._wake_at = float("inf")  # (clock) the earliest retry or later job this cranker stored

    def notify(self) -> None:
        """Jobs were stored without being handed over: the next round asks the store."""
        self._must_ask = True
        self._wake.set()

    def hand(self, jobs: list[Job]) -> None:
        """Jobs just stored durably: run the due ones without asking the store for them."""
        now = self.clock()
        for job in jobs:
            if job.next_at > now:
                self._wake_at = min(self._wake_at, job.next_at)
            elif job.id not in self._running:
                self._ready.setdefault(job.id, job)
        self._wake.set()

    async def run(self) -> None:
        slots = max(1, self.config.workers)
        while True:
            self._wake.clear()
            free = slots - len(self._running)
            if free > 0:
                for job in self._take_ready(free):
                    self._start(job)
                free = slots - len(self._running)
                if free > 0 and (self._must_ask or time.monotonic() - self._asked_at >= self.DB_POLL_S):
                    for job in await self._due(free):
                        self._start(job)
            await self._sleep()

    def _take_ready(self, limit: int) -> list[Job]:
        jobs = []
        while self._ready and len(jobs) < limit:
            _, job = self._ready.popitem(last=False)
            if job.id not in self._running:
                jobs.append(job)
        return jobs

    async def _due(self, limit: int) -> list[Job]:
        """The stored jobs due now (up to ``limit``); one falling due before the next ask of the
        store (a job stored without a hand-over, due a little later) sets when to wake."""
        self._asked_at, self._must_ask = time.monotonic(), False
        now = self.clock()
        try:
            jobs = await self.store.call("due", now + self.DB_POLL_S, limit + 1, frozenset(self._running))
        except PyaoError as exc:
            log.warning("cannot read due jobs: %s", exc)
            return []
        later = [job for job in jobs if job.next_at > now]
        if later:
            self._wake_at = min(self._wake_at, later[0].next_at)
        jobs = [job for job in jobs if job.next_at <= now][:limit]
        for job in jobs:
            self._ready.pop(job.id, None)
        return [job for job in jobs if job.id not in self._running]

    def _start(self, job: Job) -> None:
        task = asyncio.create_task(self._attempt(job), name=f"pyao-mu-job-{job.id}")
        self._running[job.id] = task
        task.add_done_callback(lambda _t, jid=job.id: self._done(jid))

    def _done(self, job_id: str) -> None:
        self._running.pop(job_id, None)
        self._wake.set()

    async def _sleep(self) -> None:
        if len(self._running) >= max(1, self.config.workers):
            delay = 1.0
        elif self._ready:
            delay = 0.0
        elif self._wake_at <= self.clock():  # a retry is due: the next round asks the store
            self._wake_at, self._must_ask, delay = float("inf"), True, 0.0
        elif time.monotonic() - self._asked_at < self.DB_POLL_S:
            # asked lately: new work comes by hand or wakes us; a retry we stored, at its time
            delay = min(self.DB_POLL_S, self._wake_at - self.clock())
        else:
            self._asked_at = time.monotonic()
            # the earliest job due within the second that is not running: a running job is still
            # pending in the store, due in the past, and would read as "due now" (a busy loop)
            now = self.clock()
            try:
                waiting = await self.store.call("due", now + 1.0, 1, frozenset(self._running))
            except PyaoError:
                waiting = []
            due = waiting[0].next_at if waiting else None
            if due is not None:  # a stored job's time: the round after it asks the store
                self._wake_at = min(self._wake_at, due)
            delay = 1.0 if due is None else min(1.0, max(0.0, due - now))
        if delay > 0:
            # not wait_for: on Python 3.11 it swallows a cancel that arrives as the event is set
            # (a job ending, a new message), and run() would outlive the MU's shutdown
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
        else:
            await asyncio.sleep(0)

    async def stop(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _attempt(self, job: Job) -> None:
        try:
            children = await self.execute(job)
        except PyaoError as exc:
            await self._failed(job, exc)
            return
        except Exception as exc:  # a bug: keep the job, visible, and do not spin on it
            log.exception("job %s (%s) crashed", job.id, job.kind)
            await self._failed(job, exc)
            return
        await self.store.call("complete", job.id, children)
        if children:
            self.hand(children)

    async def _failed(self, job: Job, exc: BaseException) -> None:
        attempts = job.attempts + 1
        error = f"{type(exc).__name__}: {exc}"
        permanent = isinstance(exc, DataError) or not isinstance(exc, PyaoError)
        try:
            if permanent or attempts >= self.config.max_attempts:
                log.warning("giving up job %s (%s) after %d attempts: %s", job.id, job.kind, attempts, error)
                await self.store.call("fail", job.id, attempts, error)
            else:
                delay = core.backoff(attempts, self.config.retry_base_s, self.config.retry_cap_s)
                log.info("job %s (%s) failed (%s); retry in %.2fs", job.id, job.kind, error, delay)
                await self.store.call("retry", job.id, attempts, self.clock() + delay, error)
                self._wake_at = min(self._wake_at, self.clock() + delay)
        except PyaoError as store_exc:
            log.warning("cannot record the failure of job %s: %s", job.id, store_exc)

    # ------------------------------------------------------------ the steps

    async def execute(self, job: Job) -> list[Job]:
        """Run one job; return the jobs it leads to. Raises PyaoError on failure."""
        step = {
            core.RESULT: self._result,
            core.MESSAGE: self._message,
            core.SPAWN: self._spawn,
            core.DELIVER: self._deliver,
            core.PROCESS: self._process,
            core.ASSIGN: self._assign,
        }.get(job.kind)
        if step is None:
            raise DataError(f"unknown job kind {job.kind!r}")
        return await step(job, job.payload)

    async def _result(self, job: Job, p: dict[str, Any]) -> list[Job]:
        result = await self.compute.result(p["message"], p["process"])
        return core.crank_jobs(job.id, p["process"], result, p["root"], now=self.clock())

    async def _module_of(self, process_id: str) -> tuple[str, str]:
        known = await self.processes.find(process_id)
        if known is None:
            raise NotFound(f"process {process_id} was not found")
        return known

    async def _message(self, job: Job, p: dict[str, Any]) -> list[Job]:
        _, module = await self._module_of(p["from"])
        item = core.build_message(self.signer, p["msg"], p["from"], module, p["root"])
        assignments = core.assignments_of(p["msg"]["Tags"])
        payload = {"item": encode_item(item), "root": p["root"], "from": p["from"], "assignments": assignments}
        return [core.new_job(core.DELIVER, payload, job.id, now=self.clock())]

    async def _deliver(self, job: Job, p: dict[str, Any]) -> list[Job]:
        item = decode_item(p["item"])
        target = item.target_id
        sender_su = None
        if p.get("from"):
            sender = await self.processes.find(p["from"])
            sender_su = await self.locator.scheduler_url(sender[0]) if sender else None
        known = await self.processes.find(target, ask_su=sender_su)
        if known is None:  # a wallet: the message is only stored
            await self.gateway.upload(item.to_bytes())
            return []
        url = await self.locator.scheduler_url(known[0])
        await self._schedule(url, item)
        now = self.clock()
        jobs = [core.result_job(target, item.id, p["root"], now)]
        jobs += [core.assign_job(pid, item.id, p["root"], now=now) for pid in p.get("assignments") or []]
        return jobs

    async def _schedule(self, su_url: str, item: DataItem) -> None:
        try:
            await self.locator.scheduler(su_url).schedule(item.to_bytes())
        except PyaoError as exc:
            if not core.is_duplicate(exc):
                raise
            log.info("%s was already scheduled", item.id)

    async def _spawn(self, job: Job, p: dict[str, Any]) -> list[Job]:
        scheduler, module = await self._module_of(p["from"])
        item = core.build_process(self.signer, p["spawn"], p["from"], module, scheduler, p["root"])
        payload = {
            "item": encode_item(item),
            "root": p["root"],
            "from": p["from"],
            "spawn_tags": p["spawn"].get("Tags") or [],
        }
        return [core.new_job(core.PROCESS, payload, job.id, now=self.clock())]

    async def _process(self, job: Job, p: dict[str, Any]) -> list[Job]:
        item = decode_item(p["item"])
        scheduler = item.tag("Scheduler") or ""
        url = await self.locator.scheduler_url(scheduler)
        await self._schedule(url, item)
        await self.processes.remember(item.id, scheduler, item.tag("Module") or "")
        spawned = core.build_spawned(self.signer, p["spawn_tags"], p["from"], item.id)
        now = self.clock()
        jobs = [core.new_job(core.DELIVER, {"item": encode_item(spawned), "root": p["root"]}, job.id, now=now)]
        if self.config.spawn_push:
            jobs.append(core.result_job(item.id, item.id, p["root"], now))
        return jobs

    async def _assign(self, job: Job, p: dict[str, Any]) -> list[Job]:
        url = await self.processes.su_url(p["process"])
        try:
            await self.locator.scheduler(url).assign(
                p["process"], p["message"], base_layer=bool(p.get("base_layer")), exclude=p.get("exclude")
            )
        except PyaoError as exc:
            if not core.is_duplicate(exc):
                raise
        return [core.result_job(p["process"], p["message"], p["root"], self.clock())]
