"""Where process instances live and run: VM workers, in threads or in their own OS processes.

Contract
--------
* Assumes: the engine gives each request a process id and never sends two
  requests for the same process at once (its per-process lock).
* Produces: ``WorkerPool.call(op, pid, *args)`` runs one ``VMHost`` operation
  (``load``, ``run_page``, ``run_ticks``, ``snapshot``, ``fork_handle``,
  ``drop``) on the worker that holds the process. A process is pinned to one worker from ``load`` to
  ``drop`` (its instance lives there); a new process goes to the worker with
  the fewest processes, so independent processes spread over all workers.
* Two transports, one ``VMHost``: ``workers=0`` runs hosts on threads of this
  process (cheap to start: unit tests, one-core machines); ``workers=N`` starts
  N OS processes (``spawn``), so Lua and WASM run on N cores without the GIL
  serialising them. Requests to one worker run one at a time; a long evaluation
  delays only the processes that share its worker.
* Evaluating (``run_page``, ``run_ticks``): the worker plans the work itself
  (``_plan``: msgs, hash chain, cron ticks), evaluates it, and writes each
  result's JSON text once (``ProcessInstance.result_json_many``). A worker
  process given the result store's URL stores the results itself (one
  transaction per call, committed before it answers) and answers only the
  position after the work and the last evaluation, so the coordinating process
  spends nothing per message on them. Otherwise (threads, a store in memory)
  the answer carries every evaluation for the engine to store.
* Failure: a worker process that dies (killed, out of memory, a crash inside
  a native library) is restarted; the call that saw it, and any later call for
  a process it held, raise ``WorkerLost`` (a ``UnitError``), so the engine
  drops those processes and reloads them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from pyao.abc import Devices, Evaluation, ProcessInstance, ResultStore, result_is_error
from pyao.config import CUConfig
from pyao.cu._checkpoints import Position
from pyao.cu._cron import Block
from pyao.cu._plan import Pending, ProcessPlan, plan_page, plan_ticks
from pyao.cu._store import open_result_store, recent_results
from pyao.errors import PyaoError, ScheduleError, UnitError
from pyao.vm import vm_for

log = logging.getLogger("pyao.cu")


class WorkerLost(UnitError):
    """The worker that held a process is gone; the process must be loaded again."""


def build_devices(config: CUConfig) -> Devices:
    """The devices a CU's VMs may use (``name@version`` -> Device), built inside each worker."""
    from pyao.devices import build_devices as build  # imported here: only where VMs run

    return build(config)


@dataclass(frozen=True)
class Ran:
    """A worker's answer to ``run_page`` / ``run_ticks``."""

    #: where the process stands after the work (``last`` is not filled)
    position: Position
    #: the last evaluation of the work; None when there was nothing to evaluate
    last: Evaluation | None
    #: every evaluation, in order, when the worker did not store them itself (else None)
    unstored: list[Evaluation] | None
    #: the instance's host memory after the work
    footprint: int
    #: the ``ScheduleError`` message at the first break in the schedule (the work stops before it)
    broken: str | None = None
    #: (message id, result JSON) of the scheduled messages the worker stored, newly, itself: the
    #: engine's store holds them for ``recent_result`` (the MU asks for each right after)
    recent: list[tuple[str, str]] | None = None


class VMHost:
    """The instances of the processes held by one worker, and the operations on them."""

    def __init__(self, config: CUConfig, devices: Devices | None = None, store_url: str | None = None) -> None:
        """``store_url``: the result store this host writes evaluations to (None: the engine stores them)."""
        self.config = config
        self._owns_devices = devices is None
        self.devices = devices if devices is not None else build_devices(config)
        self.instances: dict[str, ProcessInstance] = {}
        self._args: dict[str, tuple] = {}
        self._store_url = store_url
        self._store: ResultStore | None = None
        #: stores pages on one thread, in order, while the next page evaluates (see ``_stored``)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pyao-cu-worker-store")
        #: pid -> its writes not yet waited for, each with the (message id, result JSON) it holds
        self._writes: dict[str, list[tuple[Future, list[tuple[str, str]]]]] = {}

    def dispatch(self, op: str, pid: str, args: tuple) -> Any:
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            raise UnitError(f"unknown VM worker operation {op!r}")
        return fn(pid, *args)

    def _instance(self, pid: str) -> ProcessInstance:
        try:
            return self.instances[pid]
        except KeyError:
            raise WorkerLost(f"process {pid} is not loaded on this worker") from None

    def op_load(self, pid: str, fmt: str, module: Any, context: Any, limits: Any, snapshot: bytes | None) -> int:
        instance = vm_for(fmt, self.devices).instantiate(module, context, limits)
        if snapshot is not None:
            instance.restore(snapshot)
        self.instances[pid] = instance
        self._args[pid] = (fmt, module, context, limits)
        return instance.footprint()

    def op_run_page(self, pid: str, plan: ProcessPlan, pos: Position, nodes: list[dict],
                    hydrated: dict[str, tuple], blocks: list[Block], env: dict, more: bool = False) -> Ran:  # fmt: skip
        """Plan one schedule page (``_plan.plan_page``) from ``pos`` and evaluate it. ``more``: the
        engine has another page to send at once, so this one may be stored while that one evaluates
        (the answer to the last page comes only once every page before it is stored)."""
        work, after, broken = plan_page(plan, pos, nodes, hydrated, blocks)
        return self._run(pid, work, after, env, broken, later=more and broken is None)

    def op_run_ticks(self, pid: str, plan: ProcessPlan, pos: Position, until: int, blocks: list[Block],
                     env: dict) -> Ran:  # fmt: skip
        """Evaluate the cron ticks after the last scheduled message up to ``until``."""
        work, after = plan_ticks(plan, pos, until, blocks)
        return self._run(pid, work, after, env, None)

    def _run(self, pid: str, work: list[Pending], after: Position, env: dict, broken: ScheduleError | None,
             later: bool = False) -> Ran:  # fmt: skip
        instance = self._instance(pid)
        seq = after.next_seq
        texts = instance.result_json_many([w.msg for w in work], env) if work else []
        done = [
            Evaluation(pid, seq + i, w.message_id, w.ordinate, w.cron, w.timestamp, w.block_height, text,
                       result_is_error(text))
            for i, (w, text) in enumerate(zip(work, texts, strict=True))
        ]  # fmt: skip
        unstored: list[Evaluation] | None = done
        recent = None
        if self._store_url is not None:
            recent = self._stored(pid, done, later)
            unstored = None
        return Ran(
            replace(after, next_seq=seq + len(done)),
            done[-1] if done else None,
            unstored,
            instance.footprint(),
            None if broken is None else str(broken),
            recent,
        )

    def _stored(self, pid: str, done: list[Evaluation], later: bool) -> list[tuple[str, str]] | None:
        """Store ``done`` on the writer thread; unless ``later``, wait until every write of ``pid``
        is committed (the first failure is raised) and answer the results of all of them that
        ``Ran.recent`` holds."""
        writes = self._writes.setdefault(pid, [])
        if done:
            writes.append((self._writer.submit(self._put, done, len(done)), recent_results(done)))
        return None if later else self._settle(pid)

    def op_settle(self, pid: str) -> list[tuple[str, str]]:
        """Wait until every evaluation of ``pid`` this worker answered is stored (``Ran.recent``)."""
        return self._settle(pid)

    def _put(self, done: list[Evaluation], count: int) -> bool:
        """Store ``done``; whether every row was new (a replay's results are not held in memory)."""
        return self._results().put(done) == count

    def _settle(self, pid: str) -> list[tuple[str, str]]:
        """Wait for ``pid``'s writes (the first failure is raised); the results of those all new."""
        recent: list[tuple[str, str]] = []
        for write, results in self._writes.pop(pid, []):
            if write.result():
                recent += results
        return recent

    def _results(self) -> ResultStore:
        if self._store is None:
            self._store = open_result_store(self._store_url or "")
        return self._store

    def op_snapshot(self, pid: str) -> bytes:
        self._settle(pid)  # a checkpoint's results are stored before it
        return self._instance(pid).snapshot()

    def op_fork_handle(self, pid: str, msg: dict, env: dict) -> Any:
        """Evaluate ``msg`` on a copy of the process (a dry run); the live instance is untouched."""
        state = self._instance(pid).snapshot()
        fmt, module, context, limits = self._args[pid]
        fork = vm_for(fmt, self.devices).instantiate(module, context, limits)
        fork.restore(state)
        return fork.handle(msg, env)

    def op_drop(self, pid: str) -> None:
        self.instances.pop(pid, None)
        self._args.pop(pid, None)
        with contextlib.suppress(Exception):  # the engine drops a process after a failure: no second report
            self._settle(pid)

    def close(self) -> None:
        """Release the devices this host built (drain provenance records, close connections)."""
        self._writer.shutdown(wait=True)
        if self._store is not None:
            self._store.close()
        if self._owns_devices:
            from pyao.devices import close_devices

            close_devices(self.devices)


# ------------------------------------------------------------------ transports


class _ThreadWorker:
    """A VMHost on one thread of this process."""

    def __init__(self, config: CUConfig, index: int, devices: Devices | None = None) -> None:
        self.host = VMHost(config, devices)
        self.generation = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"pyao-cu-vm{index}")

    async def call(self, op: str, pid: str, args: tuple) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.host.dispatch, op, pid, args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.host.close()


#: a worker process's collector thresholds: a page of messages allocates and frees a great many
#: short-lived objects, and CPython's defaults (700, 10, 10) then scan the long-lived ones (the VM
#: runtimes, the modules) over and over: ~25% of a worker's time on token Transfers
WORKER_GC_THRESHOLDS = (100_000, 20, 100)


def _worker_main(conn: Any, config: CUConfig, store_url: str | None) -> None:
    """A worker process: answer ``(op, pid, args)`` requests until the pipe closes."""
    host = VMHost(config, store_url=store_url)
    gc.freeze()  # what start-up made (modules, devices) lives as long as the worker: never scan it
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    while True:
        try:
            op, pid, args = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            host.close()
            return
        try:
            reply = ("ok", host.dispatch(op, pid, args))
        except PyaoError as exc:
            reply = ("error", (type(exc), str(exc)))
        except Exception as exc:  # a VM bug: report it typed, keep the worker alive
            reply = ("error", (UnitError, f"VM worker failed on {op}: {exc!r}"))
        conn.send(reply)


def _rebuilt(cls: type[PyaoError], message: str) -> PyaoError:
    """The worker's error, re-made here (some errors take other constructor arguments)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


class _ProcessWorker:
    """A VMHost in its own OS process, reached over a pipe (one request at a time)."""

    def __init__(self, config: CUConfig, index: int, store_url: str | None) -> None:
        self.config, self.index, self.store_url = config, index, store_url
        self.generation = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"pyao-cu-worker{index}")
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, self.config, self.store_url),
            name=f"pyao-cu-worker{self.index}",
            daemon=True,
        )
        self.process.start()
        child.close()

    def _roundtrip(self, op: str, pid: str, args: tuple) -> Any:
        try:
            self._conn.send((op, pid, args))
            status, value = self._conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            self._restart()
            raise WorkerLost(f"VM worker {self.index} died during {op} of process {pid} ({exc!r})") from None
        if status == "error":
            raise _rebuilt(*value)
        return value

    def _restart(self) -> None:
        log.warning("VM worker %s died (exit code %s); starting a new one", self.index, self.process.exitcode)
        try:
            self._conn.close()
        finally:
            self.process.join(timeout=1)
            self.generation += 1
            self._start()

    async def call(self, op: str, pid: str, args: tuple) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._roundtrip, op, pid, args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


class WorkerPool:
    """The CU's VM workers and which process is held by which (see the module docstring)."""

    def __init__(self, config: CUConfig, devices: Devices | None = None, store_url: str | None = None) -> None:
        """``devices`` given as objects live in this process, so their VMs run on threads here.
        ``store_url``: the result store, for worker processes to write evaluations to themselves."""
        self._built: Devices | None = None  # devices this pool built for its threads (it closes them)
        if config.worker_count > 0 and devices is None:
            self.workers: list[Any] = [_ProcessWorker(config, i, store_url) for i in range(config.worker_count)]
        else:
            shared = devices if devices is not None else build_devices(config)
            self._built = None if devices is not None else shared
            count = max(1, config.vm_threads)
            self.workers = [_ThreadWorker(config, i, shared) for i in range(count)]
        #: pid -> (worker index, that worker's generation when the process was loaded)
        self._placement: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def _place(self, pid: str) -> int:
        with self._lock:
            if pid not in self._placement:
                load = [0] * len(self.workers)
                for index, _gen in self._placement.values():
                    load[index] += 1
                index = load.index(min(load))
                self._placement[pid] = (index, self.workers[index].generation)
            return self._placement[pid][0]

    async def call(self, op: str, pid: str, *args: Any) -> Any:
        """Run ``op`` for ``pid`` on its worker (``load`` places a new process first)."""
        if op == "load":
            self._placement.pop(pid, None)
            index = self._place(pid)
        else:
            placed = self._placement.get(pid)
            if placed is None or placed[1] != self.workers[placed[0]].generation:
                self._placement.pop(pid, None)
                raise WorkerLost(f"process {pid} is not loaded (its worker was restarted or it was dropped)")
            index = placed[0]
        try:
            return await self.workers[index].call(op, pid, args)
        except WorkerLost:
            self._placement.pop(pid, None)
            raise

    async def drop(self, pid: str) -> None:
        if pid in self._placement:
            with contextlib.suppress(WorkerLost):
                await self.call("drop", pid)
            self._placement.pop(pid, None)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        if self._built is not None:
            from pyao.devices import close_devices

            close_devices(self._built)


__all__ = ["Ran", "VMHost", "WorkerLost", "WorkerPool", "build_devices"]
