"""Signature checks of posted items (the SU's and the MU's): small items on the spot, large ones
in batches on a worker thread.

Contract: ``await verifier.verify(item)`` returns once the item's signature is
checked, or raises ``SignatureError``; nothing is scheduled before that, and
errors come in the same order as before (signature first, then the ao rules).

Where the check runs: checking a signature is the largest single cost of a
posted item (ed25519 ~50 µs in libsodium, which lets the GIL go), yet handing a
small item's check to a thread costs more than the check: two context switches
and the GIL back and forth with the event loop, per item or per batch (measured
end to end on 2 cores, ``pyao up`` with 1,000 processes: 1,128-1,148 msg/s
checked here against 1,006-1,041 on the thread). An item with at most
``inline_bytes`` of data is therefore checked at once on the caller's thread.
A larger item's deep hash is mostly hashing, which ``hashlib`` does without the
GIL: those queue in a deque, and one job on the worker drains whatever has
queued (a batch) and hands all the answers back to the loop in one call. An
item whose check already passed in this process (the same bytes the MU checked,
reaching the SU of ``pyao up``) is not checked again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor

from pyao.data import DataItem
from pyao.errors import SignatureError, StoreError

MAX_BATCH = 256
#: items with at most this much data are checked on the caller's thread (see above)
INLINE_BYTES = 64 * 1024
_Verdict = tuple[asyncio.Future, BaseException | None]


class Verifier:
    def __init__(self, executor: ThreadPoolExecutor, *, inline_bytes: int = INLINE_BYTES) -> None:
        self._executor = executor
        self._inline_bytes = inline_bytes
        self._queue: deque[tuple[DataItem, asyncio.Future]] = deque()
        self._draining = False  # touched by the event loop only

    async def verify(self, item: DataItem) -> None:
        if item.known_valid:  # checked already in this process (``pyao up``: the MU, then the SU)
            return
        if len(item.data) <= self._inline_bytes:
            if not item.verify():
                raise SignatureError(f"data item {item.id} has an invalid signature")
            return
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((item, future))
        if not self._draining:
            self._start(loop)
        await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._executor.submit(self._drain, loop)
        except RuntimeError:  # the worker is shut down: the unit is stopping
            self._draining = False
            while self._queue:
                _, future = self._queue.popleft()
                if not future.done():
                    future.set_exception(StoreError("the unit is shutting down"))
            return
        self._draining = True

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: check everything queued so far, answer on the loop in one call."""
        verdicts: list[_Verdict] = []
        for _ in range(min(len(self._queue), MAX_BATCH)):  # bounded: answers never wait long
            item, future = self._queue.popleft()
            try:
                ok = item.verify()
                verdicts.append(
                    (future, None if ok else SignatureError(f"data item {item.id} has an invalid signature"))
                )
            except Exception as exc:  # a verifier bug must still answer the request
                verdicts.append((future, exc))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(self._answer, verdicts, loop)

    def _answer(self, verdicts: list[_Verdict], loop: asyncio.AbstractEventLoop) -> None:
        for future, error in verdicts:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)
        self._draining = False
        if self._queue:
            self._start(loop)
