"""The MU's cranker takes jobs just stored from memory (no ``due`` query per job), never starts
one job twice at once, and still finds stored jobs it was not handed (a restart, a retry)."""

from __future__ import annotations

import asyncio

from pyao.config import MUConfig
from pyao.errors import UnitError
from pyao.mu._core import result_job
from pyao.mu._crank import AsyncStore, Cranker
from pyao.mu._store import open_store

PID = "p" * 43


class CountingStore(AsyncStore):
    """The real SQLite store on its thread, counting the read queries the cranker makes."""

    def __init__(self, url: str) -> None:
        super().__init__(open_store(url))
        self.queries: list[str] = []

    async def call(self, name, *args):
        if name in ("due", "next_due"):
            self.queries.append(name)
        return await super().call(name, *args)


def cranker(store: AsyncStore, runs: list[str], fail_first: set[str] = frozenset()) -> Cranker:
    config = MUConfig(workers=4, retry_base_s=0.05, retry_cap_s=0.05)
    c = Cranker(config, store, None, None, None, None, None)  # type: ignore[arg-type]
    failed: set[str] = set()

    async def execute(job):
        runs.append(job.id)
        await asyncio.sleep(0.01)
        if job.id in fail_first and job.id not in failed:
            failed.add(job.id)
            raise UnitError("the CU is away")
        return []

    c.execute = execute  # the steps need live units; what is tested here is the picking
    return c


def test_handed_jobs_run_once_without_a_due_query_each(tmp_path):
    async def scenario() -> None:
        store = CountingStore(f"sqlite:///{tmp_path}/mu.db")
        runs: list[str] = []
        c = cranker(store, runs)
        task = asyncio.create_task(c.run())
        await asyncio.sleep(0.1)  # the first round asks the store (a restart's rows)
        asked = len(store.queries)
        jobs = [result_job(PID, f"m{n:042d}", None, now=0.0) for n in range(40)]
        for job in jobs:
            await store.call("add", [job])
            c.hand([job])
            c.hand([job])  # handed twice (a duplicate submission): still run once
        while len(runs) < len(jobs) or c._running:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert sorted(runs) == sorted(j.id for j in jobs)
        assert len(store.queries) - asked <= 4, store.queries  # not one per job
        assert (await store.call("counts")).get("pending", 0) == 0
        task.cancel()
        await c.stop()
        store.close()

    asyncio.run(scenario())


def test_jobs_not_handed_and_retries_are_still_run(tmp_path):
    async def scenario() -> None:
        store = CountingStore(f"sqlite:///{tmp_path}/mu.db")
        stored = [result_job(PID, f"s{n:042d}", None, now=0.0) for n in range(3)]
        await store.call("add", stored)  # stored before this cranker started: found by due
        runs: list[str] = []
        flaky = result_job(PID, "f" * 43, None, now=0.0)
        c = cranker(store, runs, fail_first={flaky.id})
        task = asyncio.create_task(c.run())
        await store.call("add", [flaky])
        c.hand([flaky])
        for _ in range(300):
            if runs.count(flaky.id) == 2 and all(j.id in runs for j in stored) and not c._running:
                break
            await asyncio.sleep(0.01)
        assert runs.count(flaky.id) == 2  # failed once, retried at its time
        assert sorted(r for r in runs if r != flaky.id) == sorted(j.id for j in stored)
        task.cancel()
        await c.stop()
        store.close()

    asyncio.run(scenario())
