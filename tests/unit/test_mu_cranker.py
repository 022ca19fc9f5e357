"""The MU's cranker loop: when it wakes to pick due jobs.

A job stays ``pending`` in the store while it runs (so a crash runs it again). The cranker
must therefore look past the jobs it is running when it decides how long to sleep: else a
running job, due in the past, reads as "due now", and the loop queries the store over and
over for as long as the job runs. And it must still wake on time for a job that comes due
while another runs, and stop when cancelled even as it is woken (the MU's shutdown).

A real SQLite work queue and a real HTTP stand-in for the CU (loopback, uvicorn) whose
``/result`` answers the message ``slow`` only when the test lets it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from pyao.client import ComputeClient, GatewayClient, SchedulerLocator
from pyao.config import MUConfig
from pyao.data import Ed25519Signer
from pyao.mu import _core as core
from pyao.mu._crank import AsyncStore, Cranker, Processes
from pyao.mu._store import SqliteMessengerStore
from pyao.testing.servers import serve_app

P = "p" * 43
EMPTY = {"Messages": [], "Spawns": [], "Assignments": [], "Output": ""}


class CountingStore(SqliteMessengerStore):
    """The SQLite work queue, counting the reads the cranker makes to decide what is due."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.reads: Counter[str] = Counter()

    def due(self, *args):
        self.reads["due"] += 1
        return super().due(*args)

    def next_due(self):
        self.reads["next_due"] += 1
        return super().next_due()


class SlowCU:
    """``GET /result/{message}``: answers at once, except ``slow``, held until ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.asked: dict[str, float] = {}

        def result(request):
            message = request.path_params["message"]
            self.asked[message] = time.time()
            if message == "slow":
                self.release.wait(10)
            return JSONResponse(EMPTY)

        self.app = Starlette(routes=[Route("/result/{message}", result)])


async def _run(tmp_path, scenario):
    cu = SlowCU()
    store = CountingStore(str(tmp_path / "mu.db"))
    with serve_app(cu.app) as cu_url:
        config = MUConfig(workers=2, request_timeout_s=10)
        jobs = AsyncStore(store)
        gateway = GatewayClient("http://127.0.0.1:9")  # never asked: result jobs only read the CU
        locator = SchedulerLocator(gateway)
        compute = ComputeClient(cu_url, timeout=10)
        signer = Ed25519Signer.from_seed(bytes(32))
        cranker = Cranker(config, jobs, signer, locator, Processes(jobs, locator), compute, gateway)
        task = asyncio.create_task(cranker.run())
        try:
            await scenario(cranker, jobs, store, cu)
        finally:
            cu.release.set()
            task.cancel()  # as the MU's shutdown does: the loop first, then the running jobs
            await asyncio.gather(task, return_exceptions=True)
            await cranker.stop()
            await compute.close()
            await gateway.close()
            jobs.close()


async def _until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_running_job_does_not_keep_the_cranker_polling_the_store(tmp_path):
    async def scenario(cranker, jobs, store, cu):
        await jobs.call("add", [core.result_job(P, "slow", None, now=time.time())])
        cranker.notify()
        await _until(lambda: "slow" in cu.asked)
        before = sum(store.reads.values())
        await asyncio.sleep(1.0)  # the job runs all this second; nothing else is due
        polled = sum(store.reads.values()) - before
        cu.release.set()
        await _until(lambda: not cranker._running)
        assert (await jobs.call("counts"))["pending"] == 0
        # a wake-up a second at most (and one when the job ends), not a busy loop
        assert polled <= 6, f"{polled} store reads while one job ran for 1 s: {dict(store.reads)}"

    asyncio.run(_run(tmp_path, scenario))


def test_a_job_due_later_starts_on_time_while_another_runs(tmp_path):
    async def scenario(cranker, jobs, store, cu):
        start = time.time()
        await jobs.call("add", [core.result_job(P, "slow", None, now=start)])
        await jobs.call("add", [core.result_job(P, "later", None, now=start + 0.4)])
        cranker.notify()
        await _until(lambda: "later" in cu.asked)
        late = cu.asked["later"] - (start + 0.4)
        assert "slow" in cu.asked and not cu.release.is_set()  # the slow job was still running
        assert -0.01 <= late < 0.3, f"the job due at +0.4 s started {late:+.3f} s off"

    asyncio.run(_run(tmp_path, scenario))


def test_the_cranker_stops_when_cancelled_as_it_is_woken(tmp_path):
    """A job ending (or a message arriving) wakes the loop in the same step as the MU's shutdown
    cancels it: the cancel must not be lost (``asyncio.wait_for`` on Python 3.11 loses it)."""

    async def scenario(cranker, jobs, store, cu):
        for _ in range(5):
            loop = asyncio.create_task(cranker.run())
            await asyncio.sleep(0.05)  # asleep, waiting to be woken
            cranker.notify()
            loop.cancel()
            done, _ = await asyncio.wait({loop}, timeout=2.0)
            if not done:
                loop.cancel()
                await asyncio.gather(loop, return_exceptions=True)
            assert done, "the cranker went on after it was cancelled"

    asyncio.run(_run(tmp_path, scenario))
