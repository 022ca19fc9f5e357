"""How the engine reaches the VM workers: the pool, each worker's transport, and batching.

Contract
--------
* ``WorkerPool.call(op, pid, *args)`` runs one ``VMHost`` operation (see ``_workers``) on the
  worker that holds the process. A process is pinned to one worker from ``load`` to ``drop``
  (its instance lives there); a new process goes to the worker with the fewest processes, so
  independent processes spread over all workers.
* Two transports, one ``VMHost``: ``workers=0`` runs hosts on threads of this process (cheap to
  start: unit tests, one-core machines); ``workers=N`` starts N OS processes (``spawn``), so Lua
  and WASM run on N cores without the GIL serialising them. Requests to one worker run one at a
  time; a long evaluation delays only the processes that share its worker.
* Batches (``_Front``): evaluation requests (``run_page``, ``run_ticks``) of different processes
  that wait for a busy worker go to it together, in one round trip (``VMHost.run_batch``), up to
  ``MAX_BATCH``; the worker answers in parts (``VMHost.run_batch``), each as soon as it is stored.
* Failure: a worker process that dies (killed, out of memory, a crash inside a native library)
  is restarted; the call that saw it, and any later call for a process it held, raise
  ``WorkerLost``, so the engine drops those processes and reloads them from their checkpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import socket
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.reduction import ForkingPickler
from typing import Any

from pyao.abc import Devices
from pyao.config import CUConfig
from pyao.cu._workers import EVALUATING, Reply, VMHost, WorkerLost, build_devices
from pyao.errors import PyaoError, UnitError

log = logging.getLogger("pyao.cu")

#: the most requests one batch carries
MAX_BATCH = 64


#: sends a batch of requests to a worker and waits for every reply: each part of them but the last
#: goes to ``deliver(first index, replies)`` as it comes (on the event loop), the last is returned
#: as (first index, replies)
Exchange = Callable[
    [list[tuple[str, str, tuple]], Callable[[int, list[Reply]], None]], Awaitable[tuple[int, list[Reply]]]
]


class _Front:
    """One worker's requests: one exchange at a time; evaluation requests that arrive while one is
    under way wait, and go together (up to ``MAX_BATCH``) in the next."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange
        self._waiting: deque[tuple[tuple[str, str, tuple], asyncio.Future]] = deque()
        self._busy = False
        self._job: asyncio.Future | None = None

    async def call(self, op: str, pid: str, args: tuple) -> Any:
        loop = asyncio.get_running_loop()
        answer = loop.create_future()
        self._waiting.append(((op, pid, args), answer))
        if not self._busy:
            # sent once the loop has run what is ready now: evaluations started together (a burst
            # of the MU's cranks, a page read answered on the loop) then go in one batch
            self._busy = True
            loop.call_soon(self._send, loop)
        return await answer

    def _take(self) -> list[tuple[tuple[str, str, tuple], asyncio.Future]]:
        """The next batch: the first request still wanted, and the evaluations waiting after it if it
        is one (a request whose caller gave up is not sent)."""
        batch: list[tuple[tuple[str, str, tuple], asyncio.Future]] = []
        while self._waiting and len(batch) < MAX_BATCH:
            request, answer = self._waiting[0]
            if batch and not (request[0] in EVALUATING and batch[0][0][0] in EVALUATING):
                break
            self._waiting.popleft()
            if not answer.done():
                batch.append((request, answer))
        return batch

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._take()
        self._busy = bool(batch)
        if not batch:
            return

        def deliver(first: int, replies: list[Reply]) -> None:
            _answered(batch[first : first + len(replies)], replies)

        # held here: the loop keeps only a weak reference to a task
        job = loop.create_task(self._exchange([request for request, _ in batch], deliver))
        job.add_done_callback(lambda done: self._exchanged(loop, batch, done))
        self._job = job

    def _exchanged(self, loop: asyncio.AbstractEventLoop, batch: list, job: asyncio.Future) -> None:
        """The exchange ended (the parts it delivered were answered before this runs): answer its last
        part, fail what it left unanswered (a lost worker), then send the next batch."""
        failure = asyncio.CancelledError() if job.cancelled() else job.exception()
        if failure is None:
            first, replies = job.result()
            _answered(batch[first : first + len(replies)], replies)
        for _, answer in batch:
            if not answer.done():
                answer.set_exception(failure or UnitError("the VM worker left a request unanswered"))
        self._send(loop)


def _answered(batch: list[tuple[Any, asyncio.Future]], replies: list[Reply]) -> None:
    for (_, answer), (status, value) in zip(batch, replies, strict=True):
        if answer.done():  # its caller gave up
            continue
        if status == "ok":
            answer.set_result(value)
        else:
            answer.set_exception(value if isinstance(value, BaseException) else _rebuilt(*value))


class _ThreadWorker:
    """A VMHost on one thread of this process."""

    def __init__(self, config: CUConfig, index: int, devices: Devices | None = None) -> None:
        self.host = VMHost(config, devices)
        self.generation = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"pyao-cu-vm{index}")
        self._front = _Front(self._exchange)

    async def _exchange(self, requests: list[tuple[str, str, tuple]],
                        deliver: Callable[[int, list[Reply]], None]) -> tuple[int, list[Reply]]:  # fmt: skip
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._run, requests, loop, deliver)

    def _run(self, requests: list[tuple[str, str, tuple]], loop: asyncio.AbstractEventLoop,
             deliver: Callable[[int, list[Reply]], None]) -> tuple[int, list[Reply]]:  # fmt: skip
        """The batch, on this worker's thread: every part but the last is handed to the loop."""
        sent, last = 0, (0, [])

        def answer(part: list[Reply]) -> None:
            nonlocal sent, last
            if sent + len(part) < len(requests):
                loop.call_soon_threadsafe(deliver, sent, part)
            else:
                last = sent, part
            sent += len(part)

        self.host.run_batch(requests, answer)
        return last

    async def call(self, op: str, pid: str, args: tuple) -> Any:
        return await self._front.call(op, pid, args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.host.close()


#: a worker process's collector thresholds: a page of messages allocates and frees a great many
#: short-lived objects, and CPython's defaults (700, 10, 10) then scan the long-lived ones (the VM
#: runtimes, the modules) over and over: ~25% of a worker's time on token Transfers
WORKER_GC_THRESHOLDS = (100_000, 20, 100)


def _batch_scheduling() -> None:
    """Mark this worker process a batch job for Linux's scheduler (``SCHED_BATCH``): a worker the unit
    wakes with a request then does not preempt the unit's event loop on its core, which is what
    answers clients and feeds every worker (measured end to end, ``pyao up`` on 2 cores with 1,000
    processes: 1,106-1,125 msg/s against 1,066-1,095 without). Elsewhere it is left as it is."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def _worker_main(conn: Any, config: CUConfig, store_url: str | None) -> None:
    """A worker process: run each batch of ``(op, pid, args)`` requests, answering it in parts
    (``VMHost.run_batch``), until the pipe closes."""
    _batch_scheduling()
    host = VMHost(config, store_url=store_url)
    host.portable_errors = True
    gc.freeze()  # what start-up made (modules, devices) lives as long as the worker: never scan it
    gc.set_threshold(*WORKER_GC_THRESHOLDS)
    while True:
        try:
            requests = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            host.close()
            return
        host.run_batch(requests, conn.send)


def _rebuilt(cls: type[PyaoError], message: str) -> PyaoError:
    """The worker's error, re-made here (some errors take other constructor arguments)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc


class _Channel(asyncio.Protocol):
    """The event loop's end of a worker's pipe, in ``multiprocessing.Connection``'s framing (a 4-byte
    big-endian length, or -1 and an 8-byte one, then the pickle), so the worker keeps a plain
    ``Connection``. Writes go through the loop's transport and frames are assembled as bytes arrive,
    so the loop never blocks on the pipe, however large a batch or an answer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()  # deleting its head is O(1) in CPython: frames cut anywhere cost O(n)
        self._frames: deque[bytes] = deque()
        self._waiter: asyncio.Future | None = None
        self._lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            size, start = int.from_bytes(buffer[:4], "big", signed=True), 4
            if size == -1:
                if len(buffer) < 12:
                    break
                size, start = int.from_bytes(buffer[4:12], "big"), 12
            elif size < 0:  # not Connection's framing: nothing after it can be trusted
                self.connection_lost(EOFError(f"the VM worker's pipe carried a bad frame length {size}"))
                self.close()
                return
            if len(buffer) < start + size:
                break
            with memoryview(buffer) as view:  # one copy of the frame (released before the buffer shrinks)
                self._frames.append(bytes(view[start : start + size]))
            del buffer[: start + size]
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost is None:  # the first reason stands (a bad frame, then the transport's close)
            self._lost = exc or EOFError("the VM worker closed its pipe")
        self._wake()

    def _wake(self) -> None:
        if self._frames or self._lost is not None:
            waiter, self._waiter = self._waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def send(self, data: bytes) -> None:
        if self._lost is not None or self.transport is None or self.transport.is_closing():
            raise EOFError("the VM worker's pipe is closed")
        if len(data) > 0x7FFFFFFF:
            self.transport.writelines([b"\xff\xff\xff\xff", len(data).to_bytes(8, "big"), data])
        else:
            self.transport.writelines([len(data).to_bytes(4, "big"), data])

    async def receive(self) -> Any:
        """The worker's next message (unpickled)."""
        while not self._frames:
            if self._lost is not None:
                raise self._lost
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return ForkingPickler.loads(self._frames.popleft())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class _ProcessWorker:
    """A VMHost in its own OS process, reached over a pipe (one batch of requests at a time), which
    the event loop drives through a ``_Channel``: no thread hop each way, and no blocking call."""

    def __init__(self, config: CUConfig, index: int, store_url: str | None) -> None:
        self.config, self.index, self.store_url = config, index, store_url
        self.generation = 0
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"pyao-cu-worker{index}")
        self._front = _Front(self._exchange)
        self._channel: _Channel | None = None
        self._channel_loop: asyncio.AbstractEventLoop | None = None
        self._channel_socket: socket.socket | None = None
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

    def _drop_channel(self) -> None:
        if self._channel is not None:
            try:
                self._channel.close()
            except RuntimeError:  # its loop is closed and cannot close the socket: close it here
                if self._channel_socket is not None:
                    self._channel_socket.close()
        self._channel, self._channel_loop, self._channel_socket = None, None, None

    async def _attached(self) -> _Channel:
        """This loop's channel to the worker: made on first use, and again for another loop (each
        gets its own descriptor, a duplicate of the pipe's)."""
        loop = asyncio.get_running_loop()
        if self._channel is None or self._channel_loop is not loop:
            self._drop_channel()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(self._conn.fileno()))
            sock.setblocking(False)
            _, channel = await loop.create_unix_connection(_Channel, sock=sock)
            self._channel, self._channel_loop, self._channel_socket = channel, loop, sock
        return self._channel

    async def _exchange(self, requests: list[tuple[str, str, tuple]],
                        deliver: Callable[[int, list[Reply]], None]) -> tuple[int, list[Reply]]:  # fmt: skip
        loop = asyncio.get_running_loop()
        answered = 0
        try:
            channel = await self._attached()
            channel.send(ForkingPickler.dumps(requests))
            while True:
                part = await channel.receive()
                if answered + len(part) >= len(requests):
                    return answered, part
                deliver(answered, part)
                answered += len(part)
        except (EOFError, OSError) as exc:
            self._drop_channel()
            await loop.run_in_executor(self._pool, self._restart)
            op, pid, _ = requests[answered]
            raise WorkerLost(f"VM worker {self.index} died during {op} of process {pid} ({exc!r})") from None

    def _restart(self) -> None:
        log.warning("VM worker %s died (exit code %s); starting a new one", self.index, self.process.exitcode)
        try:
            self._conn.close()
        finally:
            self.process.join(timeout=1)
            self.generation += 1
            self._start()

    async def call(self, op: str, pid: str, args: tuple) -> Any:
        return await self._front.call(op, pid, args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._drop_channel()
        # The loop closes the channel's descriptor only on its next round, and close() may block it
        # (the join below): shut the socket itself, so the worker reads EOF now and exits.
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(self._conn.fileno())) as pipe:
            pipe.shutdown(socket.SHUT_RDWR)
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


__all__ = ["WorkerPool"]
