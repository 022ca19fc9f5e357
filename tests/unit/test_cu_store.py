"""The CU's result store: one suite, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from pyao.abc import Evaluation
from pyao.cu import open_result_store
from pyao.errors import StoreError

PID = "p" * 43


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path}/cu.db" if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    s = open_result_store(url)
    yield s
    s.close()


def ev(seq, *, ts, ordinate, cron=None, error=False, pid=PID, mid=None):
    result = {"Messages": [], "Spawns": [], "Assignments": [], "Output": f"out {seq}", "GasUsed": seq}
    if error:
        result["Error"] = "boom"
    message_id = None if cron else (mid or f"{seq:043d}")
    return Evaluation.of(pid, seq, message_id, ordinate, cron, ts, 7, result)


def stream():
    return [
        ev(0, ts=1000, ordinate=0),
        ev(1, ts=1000, ordinate=0, cron="0-1-seconds"),
        ev(2, ts=2000, ordinate=0, cron="0-1-seconds"),
        ev(3, ts=2500, ordinate=1),
        ev(4, ts=2600, ordinate=2, error=True),
        ev(5, ts=3000, ordinate=2, cron="0-1-seconds"),
        ev(6, ts=3100, ordinate=3),
    ]


def test_put_is_idempotent_and_rows_read_back(store):
    rows = stream()
    store.put(rows[:4])
    store.put(rows)  # a replay after a restart stores nothing twice
    changed = Evaluation.of(PID, 0, rows[0].message_id, 0, None, 1000, 7, {"Output": "different"})
    store.put([changed])
    assert store.by_message(PID, rows[0].message_id) == rows[0]
    assert store.by_message(PID, rows[4].message_id).is_error
    assert store.by_message(PID, "x" * 43) is None
    assert store.last(PID) == rows[-1]
    assert store.last("q" * 43) is None
    assert store.at(PID, 2000, 0, "0-1-seconds") == rows[2]
    assert store.at(PID, 2500, 1, None) == rows[3]
    assert store.at(PID, 2500, 1, "0-1-seconds") is None
    store.put([])


def test_page_bounds_order_and_errors(store):
    store.put(stream())
    store.put([ev(0, ts=1, ordinate=0, pid="q" * 43)])
    seqs = lambda rows: [r.seq for r in rows]  # noqa: E731
    assert seqs(store.page(PID, limit=100)) == [0, 1, 2, 3, 5, 6]  # the errored one is left out
    assert seqs(store.page(PID, limit=100, descending=True)) == [6, 5, 3, 2, 1, 0]
    assert seqs(store.page(PID, limit=2)) == [0, 1]
    assert seqs(store.page(PID, limit=100, only_cron=True)) == [1, 2, 5]
    assert seqs(store.page(PID, limit=100, seq_gt=1, seq_le=5)) == [2, 3, 5]
    assert seqs(store.page(PID, limit=100, descending=True, seq_lt=5, seq_ge=1)) == [3, 2, 1]
    assert seqs(store.page(PID, limit=100, ts_ge=2000, ts_le=3000)) == [2, 3, 5]
    assert store.page(PID, limit=0) == []


def test_bad_urls_are_refused():
    with pytest.raises(StoreError):
        open_result_store("mysql://nope")


def test_recent_results_answer_only_what_was_committed(store):
    """The MU asks for each result right after it is stored: those come from memory, as the exact
    text stored; a replayed batch (rows kept as they were) is not remembered, and a new store
    (a restarted CU) answers from the database."""
    import json

    rows = stream()
    assert store.recent_result(PID, rows[0].message_id) is None
    assert not store.holds_recent(PID, rows[0].message_id)
    store.put(rows[:4])
    held = store.recent_result(PID, rows[3].message_id)
    assert held is not None and json.loads(held) == rows[3].result
    assert store.holds_recent(PID, rows[3].message_id)
    assert store.recent_result(PID, "x" * 43) is None and not store.holds_recent(PID, "x" * 43)
    assert all(store.recent_result(PID, r.message_id or "") is None for r in rows if r.cron)
    assert store.by_message(PID, rows[3].message_id) == rows[3]


def test_a_replayed_batch_is_not_remembered(tmp_path):
    url = f"sqlite:///{tmp_path}/cu.db"
    first = open_result_store(url)
    original = ev(0, ts=1000, ordinate=0)
    first.put([original])
    first.close()
    second = open_result_store(url)  # a restarted CU replays seq 0 with other content
    changed = Evaluation.of(PID, 0, original.message_id, 0, None, 1000, 7, {"Output": "different"})
    second.put([changed, ev(1, ts=2000, ordinate=1)])
    assert second.recent_result(PID, original.message_id) is None
    assert second.by_message(PID, original.message_id) == original
    second.close()


def test_put_groups_commits_several_processes_pages_together_and_counts_each(store):
    """A VM worker stores the pages of several processes in one transaction: each group says how
    many of its rows were new, and a failing row leaves every group of the call unstored."""
    other = "q" * 43
    store.put([ev(0, ts=1000, ordinate=0)])
    mine = [ev(0, ts=1000, ordinate=0), ev(1, ts=2000, ordinate=1)]  # seq 0 is stored already
    theirs = [ev(0, ts=1500, ordinate=0, pid=other, mid="a" * 43)]
    assert store.put_groups([mine, [], theirs]) == [1, 0, 1]
    assert store.last(PID) == mine[1] and store.last(other) == theirs[0]
    broken = Evaluation(other, 2, "b" * 43, 2, None, 3000, 7, object(), False)  # a result no driver can bind
    with pytest.raises(StoreError):
        store.put_groups([[ev(2, ts=3000, ordinate=2)], [broken]])
    assert store.last(PID) == mine[1] and store.last(other) == theirs[0]
