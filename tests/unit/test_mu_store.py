"""The MU's work queue: one suite, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from pyao.errors import StoreError
from pyao.mu import Job, open_store
from pyao.mu import _core as core

P = "p" * 43


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path}/mu.db" if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    s = open_store(url)
    yield s
    s.close()


def job(n, at=0.0):
    return core.new_job(core.RESULT, {"process": P, "message": str(n), "root": None}, n, now=at)


def test_jobs_are_added_once_and_come_due_in_order(store):
    store.add([job(1, 5.0), job(2, 1.0), job(3, 1.0)])
    store.add([job(2, 0.0)])  # exists: unchanged
    assert store.next_due() == 1.0
    assert [j.payload["message"] for j in store.due(10.0, 10)] == ["2", "3", "1"]
    assert [j.payload["message"] for j in store.due(2.0, 10)] == ["2", "3"]
    assert [j.payload["message"] for j in store.due(10.0, 1, {job(2).id})] == ["3"]
    assert store.counts() == {"pending": 3, "failed": 0}
    loaded = store.due(10.0, 10)[0]
    assert isinstance(loaded, Job) and loaded == Job(job(2).id, "result", job(2).payload, 0, 1.0, "pending", None)


def test_complete_forgets_and_records_children_atomically(store):
    store.add([job(1)])
    children = [job(10), job(11)]
    store.complete(job(1).id, children)
    assert sorted(j.id for j in store.due(1.0, 10)) == sorted(c.id for c in children)
    store.complete(job(10).id, [])
    assert [j.id for j in store.jobs("pending", 10)] == [job(11).id]
    assert store.next_due() == 0.0
    store.complete(job(11).id, [])
    assert store.next_due() is None and store.counts() == {"pending": 0, "failed": 0}


def test_retry_and_fail(store):
    store.add([job(1), job(2)])
    store.retry(job(1).id, 1, 50.0, "down")
    assert [j.id for j in store.due(10.0, 10)] == [job(2).id]
    (later,) = [j for j in store.due(60.0, 10) if j.id == job(1).id]
    assert later.attempts == 1 and later.error == "down" and later.next_at == 50.0
    store.fail(job(2).id, 3, "never")
    assert store.counts() == {"pending": 1, "failed": 1}
    (failed,) = store.jobs("failed", 10)
    assert failed.state == "failed" and failed.attempts == 3 and failed.error == "never"
    assert job(2).id not in [j.id for j in store.due(1e12, 10)]
    store.add([job(2)])  # a failed job is not revived by re-adding it
    assert store.counts()["failed"] == 1


def test_processes_and_monitors(store):
    assert store.process(P) is None
    store.remember_process(P, "su-address", "module-id")
    store.remember_process(P, "other", "other")
    assert store.process(P) == ("su-address", "module-id")
    assert store.monitor(P) is True and store.monitor(P) is False
    assert store.monitors() == {P: None}
    store.advance(P, "cursor-1", [job(1)])
    assert store.monitors() == {P: "cursor-1"} and store.counts()["pending"] == 1
    assert store.unmonitor(P) is True and store.unmonitor(P) is False
    store.advance(P, "cursor-2", [job(2)])  # no longer monitored: nothing recorded
    assert store.monitors() == {} and store.counts()["pending"] == 1


def test_reopened_store_keeps_everything(tmp_path):
    url = f"sqlite:///{tmp_path}/mu.db"
    s = open_store(url)
    s.add([job(1)])
    s.monitor(P)
    s.close()
    s = open_store(url)
    assert [j.id for j in s.due(1.0, 10)] == [job(1).id] and s.monitors() == {P: None}
    s.close()


def test_bad_url():
    with pytest.raises(StoreError):
        open_store("mysql://nope")


def test_write_batch_runs_adds_and_completes_in_order_in_one_transaction(store):
    store.add([job(1), job(2)])
    store.write_batch(
        [
            ("complete", (job(1).id, [job(10)])),
            ("add", ([job(3), job(1)],)),  # job 1 is gone by now: added again, in order
            ("complete", (job(2).id, [])),
        ]
    )
    assert sorted(j.payload["message"] for j in store.due(10.0, 10)) == ["1", "10", "3"]
    with pytest.raises(ValueError):
        store.write_batch([("add", ([job(4)],)), ("fail", (job(3).id, 1, "x"))])
    assert job(4).id not in {j.id for j in store.due(10.0, 10)}  # refused before anything was written


def test_write_batch_of_unrelated_adds_and_completes(store):
    store.add([job(n) for n in range(10)])
    ops = []
    for n in range(10):  # interleaved, as a burst's accepts and finished cranks arrive
        ops.append(("add", ([job(100 + n), job(100 + n)],)))  # a repeat in one batch is one job
        ops.append(("complete", (job(n).id, [job(200 + n)] if n % 2 else [])))
    store.write_batch(ops)
    expected = {str(100 + n) for n in range(10)} | {str(200 + n) for n in range(1, 10, 2)}
    assert sorted(j.payload["message"] for j in store.due(10.0, 100)) == sorted(expected)


def test_write_batch_of_unrelated_ops_takes_few_statements(tmp_path):
    s = open_store(f"sqlite:///{tmp_path}/mu.db")
    s.add([job(n) for n in range(16)])
    statements: list[str] = []
    s._conn.set_trace_callback(statements.append)
    s.write_batch([op for n in range(16) for op in (("add", ([job(100 + n)],)), ("complete", (job(n).id, [])))])
    writes = [sql for sql in statements if sql.startswith(("INSERT", "DELETE"))]
    assert len(writes) == 2  # one DELETE … IN and one multi-row INSERT, not 32 statements
    assert s.counts()["pending"] == 16
    s.close()


def test_async_store_group_commits_concurrent_writes(tmp_path):
    import asyncio

    from pyao.mu._crank import AsyncStore

    batches: list[int] = []

    class Counting(type(open_store("sqlite://:memory:"))):
        def write_batch(self, ops):
            batches.append(len(ops))
            super().write_batch(ops)

    inner = Counting(str(tmp_path / "mu.db"))
    store = AsyncStore(inner)

    async def burst() -> None:
        await asyncio.gather(*(store.call("add", [job(n)]) for n in range(200)))
        await asyncio.gather(*(store.call("complete", job(n).id, [job(1000 + n)]) for n in range(100)))

    asyncio.run(burst())
    assert sum(batches) == 300 and len(batches) < 300  # grouped
    assert inner.counts()["pending"] == 200
    assert {j.payload["message"] for j in inner.due(10.0, 500)} == {str(n) for n in range(100, 200)} | {
        str(1000 + n) for n in range(100)
    }
    store.close()
