"""What runs inside a VM worker: the process instances it holds and the operations on them.

Contract
--------
* Assumes: the engine gives each request a process id and never sends two
  requests for the same process at once (its per-process lock). How requests
  reach a worker (threads or OS processes, batching) is ``_pool``'s.
* ``VMHost`` operations: ``load`` (with the process's plan and env, its
  constants), ``run_page``, ``run_ticks``, ``snapshot``, ``fork_handle``,
  ``settle``, ``drop``. ``run_batch`` runs several requests (of different
  processes) in order and answers them in parts.
* Evaluating (``run_page``, ``run_ticks``): the worker plans the work itself
  (``_plan``: msgs, hash chain, cron ticks), evaluates it, and writes each
  result's JSON text once (``ProcessInstance.result_json_many``). A worker
  process given the result store's URL stores the results itself and answers
  only the position after the work and the last evaluation, so the
  coordinating process spends nothing per message on them. Otherwise (threads,
  a store in memory) the answer carries every evaluation for the engine to store.
* Storing: a batch is answered in parts, by the writer thread, which commits
  the pages of a part in one transaction and then answers it, while the next
  requests of the batch evaluate (with many processes each evaluation is often
  a one-message page, and a commit each cost more than the VM). A part goes to
  the writer as soon as it is idle, so an answer never waits for a longer
  evaluation after it. A page with more to come (``more``) is stored on the
  writer thread while the next evaluates; the answer to the last page waits for
  every write before it.
* Failure: an error in one request is that request's answer (typed; the
  others of its batch go on); a failed commit is the answer of every request
  whose pages it held, and nothing of them is stored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
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


#: the operations that evaluate; those of different processes waiting for one worker go together
EVALUATING = frozenset({"run_page", "run_ticks"})
#: a request's answer: ("ok", value) or ("error", the exception, or (its type, its message) from a process)
Reply = tuple[str, Any]


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
        #: pid -> (its ProcessPlan, its env), given once at ``load``: the same env object each call
        #: also lets the VM reuse its encoding (a fresh copy per call was re-encoded every time)
        self._held: dict[str, tuple[ProcessPlan, dict]] = {}
        self._store_url = store_url
        #: while ``run_batch`` runs: (reply index, pid, evaluations) of pages committed together
        self._deferred: list[tuple[int, str, list[Evaluation]]] | None = None
        self._index = 0
        #: errors answered as (type, message), for a transport that pickles them
        self.portable_errors = False
        self._store: ResultStore | None = None
        #: stores pages on one thread, in order, while the next page evaluates (see ``_stored``)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="pyao-cu-worker-store")
        #: the write last given to the writer thread (when done, nothing is queued there)
        self._queued: Future | None = None
        #: pid -> its writes not yet waited for: (the write, the index of its group there, the
        #: (message id, result JSON) the group holds)
        self._writes: dict[str, list[tuple[Future, int, list[tuple[str, str]]]]] = {}

    def dispatch(self, op: str, pid: str, args: tuple) -> Any:
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            raise UnitError(f"unknown VM worker operation {op!r}")
        return fn(pid, *args)

    def run_batch(self, requests: list[tuple[str, str, tuple]], answer: Callable[[list[Reply]], None]) -> None:
        """Run ``requests`` ((op, pid, args), at most one per process) in order. ``answer(part)`` gets
        the replies in order, in parts: the writer thread commits the pages a part evaluated (one
        transaction) and then answers it, while the next requests evaluate. A part is handed to the
        writer as soon as it is idle, so under load a part groups the requests run meanwhile, and an
        answer never waits for a longer evaluation run after it. Returns once every part is answered."""
        replies: list[Reply] = []
        handed = 0
        self._deferred = []
        try:
            for self._index, (op, pid, args) in enumerate(requests):
                replies.append(self._reply(op, pid, args))
                if len(replies) < len(requests) and self._writer_idle():
                    handed = self._hand(replies, handed, answer)
            if self._writer_idle():  # the last part here: no hop to an idle writer (most batches are one request)
                deferred, self._deferred = self._deferred or [], []
                self._answer_part(replies[handed:], handed, deferred, answer)
                return
            self._hand(replies, handed, answer)
        finally:
            self._deferred = None
        self._queued.result()  # type: ignore[union-attr]  # every part answered (a failed answer raises)

    def _writer_idle(self) -> bool:
        return self._queued is None or self._queued.done()

    def _hand(self, replies: list[Reply], first: int, answer: Callable[[list[Reply]], None]) -> int:
        """Give the replies from ``first`` on, and the pages they deferred, to the writer thread."""
        deferred, self._deferred = self._deferred or [], []
        self._queued = self._writer.submit(self._answer_part, replies[first:], first, deferred, answer)
        return len(replies)

    def _answer_part(self, part: list[Reply], first: int, deferred: list[tuple[int, str, list[Evaluation]]],
                     answer: Callable[[list[Reply]], None]) -> None:  # fmt: skip
        """On the writer thread: commit the pages ``part`` deferred in one transaction, fill those
        replies' ``recent`` (or make them the store's error), then answer the part."""
        deferred = [(i - first, pid, done) for i, pid, done in deferred if part[i - first][0] == "ok"]
        if deferred:
            written: Future = Future()
            try:
                written.set_result(self._put_groups([done for _, _, done in deferred]))
            except Exception as exc:
                written.set_exception(exc)
            for group, (_, pid, done) in enumerate(deferred):
                self._writes.setdefault(pid, []).append((written, group, recent_results(done)))
            for k, pid, _ in deferred:
                try:
                    part[k] = "ok", replace(part[k][1], recent=self._settle(pid))
                except Exception as exc:
                    part[k] = "error", self._error("store", exc)
        answer(part)

    def _reply(self, op: str, pid: str, args: tuple) -> Reply:
        try:
            return "ok", self.dispatch(op, pid, args)
        except Exception as exc:
            return "error", self._error(op, exc)

    def _error(self, op: str, exc: Exception) -> Any:
        if not self.portable_errors:
            return exc
        if isinstance(exc, PyaoError):
            return type(exc), str(exc)
        return UnitError, f"VM worker failed on {op}: {exc!r}"  # a VM bug: reported typed, the worker lives

    def _instance(self, pid: str) -> ProcessInstance:
        try:
            return self.instances[pid]
        except KeyError:
            raise WorkerLost(f"process {pid} is not loaded on this worker") from None

    def op_load(self, pid: str, fmt: str, module: Any, context: Any, limits: Any, snapshot: bytes | None,
                plan: ProcessPlan, env: dict) -> int:  # fmt: skip
        """Instantiate the process (from ``snapshot`` if given); ``plan`` and ``env`` are its constants."""
        instance = vm_for(fmt, self.devices).instantiate(module, context, limits)
        if snapshot is not None:
            instance.restore(snapshot)
        self.instances[pid] = instance
        self._args[pid] = (fmt, module, context, limits)
        self._held[pid] = (plan, env)
        return instance.footprint()

    def op_run_page(self, pid: str, pos: Position, nodes: list[dict], hydrated: dict[str, tuple],
                    blocks: list[Block], more: bool = False) -> Ran:  # fmt: skip
        """Plan one schedule page (``_plan.plan_page``) from ``pos`` and evaluate it. ``more``: the
        engine has another page to send at once, so this one may be stored while that one evaluates
        (the answer to the last page comes only once every page before it is stored)."""
        self._instance(pid)
        plan, env = self._held[pid]
        work, after, broken = plan_page(plan, pos, nodes, hydrated, blocks)
        return self._run(pid, work, after, env, broken, later=more and broken is None)

    def op_run_ticks(self, pid: str, pos: Position, until: int, blocks: list[Block]) -> Ran:
        """Evaluate the cron ticks after the last scheduled message up to ``until``."""
        self._instance(pid)
        plan, env = self._held[pid]
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
        ``Ran.recent`` holds. In a batch, a page not ``later`` is committed with the others of its
        part (``_answer_part``, which fills ``recent``)."""
        if not later and self._deferred is not None:
            self._deferred.append((self._index, pid, done))
            return None
        writes = self._writes.setdefault(pid, [])
        if done:
            writes.append((self._write([done], on_writer=later), 0, recent_results(done)))
        return None if later else self._settle(pid)

    def _write(self, groups: list[list[Evaluation]], on_writer: bool = False) -> Future:
        """Store ``groups`` (``_put_groups``): here when the writer thread has nothing queued (no hop
        for a page answered at once), else after what it has queued (the store keeps each process's
        order). ``on_writer``: always on the writer (a page stored while the next one evaluates)."""
        if on_writer or not (self._queued is None or self._queued.done()):
            self._queued = self._writer.submit(self._put_groups, groups)
            return self._queued
        done: Future = Future()
        try:
            done.set_result(self._put_groups(groups))
        except Exception as exc:
            done.set_exception(exc)
        return done

    def op_settle(self, pid: str) -> list[tuple[str, str]]:
        """Wait until every evaluation of ``pid`` this worker answered is stored (``Ran.recent``)."""
        return self._settle(pid)

    def _put_groups(self, groups: list[list[Evaluation]]) -> list[bool]:
        """Store the groups in one transaction; whether each one's rows were all new (a replay's
        results are not held in memory)."""
        inserted = self._results().put_groups(groups)
        return [count == len(group) for count, group in zip(inserted, groups, strict=True)]

    def _settle(self, pid: str) -> list[tuple[str, str]]:
        """Wait for ``pid``'s writes (the first failure is raised); the results of those all new."""
        recent: list[tuple[str, str]] = []
        for write, group, results in self._writes.pop(pid, []):
            if write.result()[group]:
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
        self._held.pop(pid, None)
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


__all__ = ["EVALUATING", "Ran", "Reply", "VMHost", "WorkerLost", "build_devices"]
