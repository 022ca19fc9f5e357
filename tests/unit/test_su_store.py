"""One test suite for every schedule store backend: SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from pyao.data import Ed25519Signer, b64url_encode
from pyao.errors import StoreError
from pyao.su import open_store
from pyao.su._core import MESSAGE, PROCESS, build_entry, next_slot

SIGNER = Ed25519Signer.from_seed(bytes(32))
PID = b64url_encode(bytes([1]) * 32)
OTHER = b64url_encode(bytes([2]) * 32)


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path}/su.db")
    else:
        s = open_store(request.getfixturevalue("postgres_dsn"))
    yield s
    s.close()


def _mid(n: int, pid: str = PID) -> str:
    return b64url_encode(bytes([n % 256, n // 256]) + pid.encode()[:30])


def _chain(pid: str, stamps: list[int], *, start=None, deep: dict[int, str] | None = None):
    entries, previous = [], start
    for now in stamps:
        slot = next_slot(previous, pid, now)
        kind = PROCESS if slot.nonce == 0 else MESSAGE
        mid = pid if kind == PROCESS else _mid(slot.nonce, pid)
        entry = build_entry(
            SIGNER, slot, process_id=pid, block_height=9, kind=kind, message_id=mid,
            message=b"item-%d" % slot.nonce, deep_hash=(deep or {}).get(slot.nonce),
        )  # fmt: skip
        entries.append(entry)
        previous = entry
    return entries


def test_write_and_read_back(store):
    entries = _chain(PID, [10, 11, 11, 12], deep={2: "dh"})
    store.write_batch(entries, [b"location"], block_height=9)
    assert store.latest([PID, OTHER]) == {PID: _without_message(entries[-1])}
    assert store.existing_ids([PID, _mid(1), "nope"]) == {PID, _mid(1)}
    assert store.existing_pairs([(PID, _mid(2)), (OTHER, _mid(2))]) == {(PID, _mid(2))}
    assert store.existing_deep_hashes([(PID, "dh"), (OTHER, "dh")]) == {(PID, "dh")}
    assert store.slot(PID, 0) == entries[0]
    assert store.entry(PID, _mid(3)) == entries[3]
    assert store.entry(PID, entries[2].assignment_id) == entries[2]
    assert store.entry(OTHER, _mid(3)) is None
    assert store.last_slot(PID) == entries[-1]
    assert store.block_height() == 9


def _without_message(entry):
    from dataclasses import replace

    return replace(entry, message=None)


def test_failed_batch_changes_nothing(store):
    entries = _chain(PID, [1, 2, 3])
    store.write_batch(entries[:2], [])
    duplicate = [*entries[2:], entries[1]]  # nonce 1 again: the whole batch must fail
    with pytest.raises(StoreError):
        store.write_batch(duplicate, [b"x"])
    assert store.last_slot(PID) == entries[1]
    assert store.counts() == (2, 2)
    store.write_batch(entries[2:], [])  # and the store still works
    assert store.last_slot(PID) == entries[2]


def test_pages_never_split_a_millisecond(store):
    stamps = [100, 101, 101, 101, 101, 102, 103, 103, 104]
    entries = _chain(PID, stamps)
    store.write_batch(entries, [])
    store.write_batch(_chain(OTHER, [101, 101]), [])
    page, more = store.page(PID, None, None, 2)
    assert [e.nonce for e in page] == [0, 1, 2, 3, 4] and more  # the 101 run is completed
    page, more = store.page(PID, 101, None, 2)
    assert [e.nonce for e in page] == [5, 6, 7] and more
    page, more = store.page(PID, 103, None, 2)
    assert [e.nonce for e in page] == [8] and not more
    page, more = store.page(PID, 100, 102, 100)
    assert [e.nonce for e in page] == [1, 2, 3, 4, 5] and not more
    page, more = store.page(PID, 100, 101, 2)
    assert [e.nonce for e in page] == [1, 2, 3, 4] and not more  # the run ends the range
    page, more = store.page(PID, 2, 5, 2, by_nonce=True)
    assert [e.nonce for e in page] == [3, 4] and more
    walked, cursor = [], None
    while True:  # a cursor walk with limit 1 sees every slot exactly once
        page, more = store.page(PID, cursor, None, 1)
        walked += [e.nonce for e in page]
        if not more:
            break
        cursor = page[-1].timestamp
    assert walked == list(range(len(stamps)))


def test_outbox(store):
    entries = _chain(PID, [1, 2])
    store.write_batch([], [b"raw-location"])
    store.write_batch(entries, [])
    pending = store.outbox(10)
    assert [what for _, what in pending] == [b"raw-location", *entries]
    store.outbox_done([pending[0][0], pending[2][0]])
    assert [what for _, what in store.outbox(10)] == [entries[0]]
    assert len(store.outbox(0)) == 0


def test_reopen_recovers(tmp_path):
    url = f"sqlite:///{tmp_path}/again.db"
    store = open_store(url)
    entries = _chain(PID, [1, 2, 3])
    store.write_batch(entries, [])
    store.close()
    store = open_store(url)
    assert store.latest([PID])[PID].hash_chain == entries[-1].hash_chain
    store.close()


def test_bad_urls():
    with pytest.raises(StoreError):
        open_store("mysql://x")
    mem = open_store("sqlite://:memory:")
    mem.write_batch(_chain(PID, [1]), [])
    assert mem.counts() == (1, 1)
    mem.close()


def test_entry_by_either_id_takes_the_lower_nonce_and_is_a_point_lookup(store, tmp_path):
    """``GET /{id}?process-id=`` names a message or an assignment; an item that is both (an SU's
    assignment assigned to the process later) is the lower nonce, as before. The lookup uses the
    unique indexes: on SQLite the plan never walks the process's schedule."""
    entries = _chain(PID, [10, 11, 12])
    slot = next_slot(entries[-1], PID, 13)  # nonce 3 assigns the assignment item of nonce 1
    assigned = build_entry(
        SIGNER, slot, process_id=PID, block_height=9, kind=MESSAGE, message_id=entries[1].assignment_id,
        message=b"item-3",
    )  # fmt: skip
    store.write_batch([*entries, assigned], [], block_height=9)
    assert store.entry(PID, entries[1].assignment_id) == entries[1]
    assert store.entry(PID, assigned.assignment_id) == assigned
    assert store.entry(OTHER, entries[1].assignment_id) is None
    if hasattr(store._r, "execute") and type(store).__name__.startswith("Sqlite"):
        plan = " ".join(
            row[3] for row in store._r.execute("EXPLAIN QUERY PLAN " + _entry_sql(store), ("a", PID, "a", PID))
        )
        assert "schedule_message" in plan and "schedule_assignment" in plan, plan
        assert "sqlite_autoindex_schedule_1 (process_id=?)" not in plan, plan


def _entry_sql(store) -> str:
    """The SQL ``store.entry`` runs, captured from the connection."""
    seen: list[str] = []
    store._r.set_trace_callback(seen.append)
    try:
        store.entry(PID, "a")
    finally:
        store._r.set_trace_callback(None)
    sql = next(s for s in seen if "UNION ALL" in s)
    return sql.replace(f"'{PID}'", "?").replace("'a'", "?")


def test_a_quick_page_is_the_page_when_short_and_none_when_longer(store):
    """``quick_page`` (a short page read on the event loop) answers exactly what ``page`` does, for
    pages of at most QUICK_PAGE slots and ``limit``; a longer one is left to ``page`` (None), and
    PostgreSQL, which would wait on the network, leaves every page to it."""
    from pyao.abc import QUICK_PAGE

    stamps = [100 + n // 3 for n in range(QUICK_PAGE + 8)]  # runs of three slots in one millisecond
    store.write_batch(_chain(PID, stamps), [])
    if not store.__class__.__name__.startswith("Sqlite"):
        assert store.quick_page(PID, None, None, 1000) is None
        return
    for lo, hi, limit in [(104, None, 1000), (101, 103, 1000), (106, None, 3), (200, None, 9)]:
        page, more = store.page(PID, lo, hi, limit)
        assert store.quick_page(PID, lo, hi, limit) == page and not more
    assert store.quick_page(PID, 100, None, 1000) is None  # 21 slots: more than QUICK_PAGE
    assert store.quick_page(PID, 104, None, 2) is None  # more than the limit: page completes the millisecond


def test_a_quick_page_near_the_end_is_read_from_memory(tmp_path, monkeypatch):
    """The last slots committed of each process answer ``quick_page`` without SQLite when they hold
    the whole page (every slot after ``lo``): the same slots ``page`` reads, in batches of any size,
    a millisecond's run included; a page reaching before them, or one from a store opened afresh
    (nothing in memory), is read from SQLite; the processes written longest ago leave memory first."""
    from pyao.su import _store

    store = open_store(f"sqlite:///{tmp_path}/su.db")
    other = "P" * 43
    stamps = [100, 101, 101, 101, 102, 104, 104, 107, 108, 108]
    chain = _chain(PID, stamps)
    store.write_batch(chain[:3], [])
    for entry in chain[3:]:
        store.write_batch([entry], [])
    store.write_batch(_chain(other, [100, 105]), [])
    seen: list[str] = []
    store._quick.set_trace_callback(seen.append)
    cases = [(104, None, 1000), (104, 107, 1000), (107, None, 1000), (107, None, 2), (108, None, 1000)]
    for lo, hi, limit in cases:
        page, more = store.page(PID, lo, hi, limit)
        assert store.quick_page(PID, lo, hi, limit) == page and not more
    assert store.quick_page(PID, 104, None, 2) is None  # three slots after 104: more than the limit
    assert seen == []  # all of it from memory
    assert store.quick_page(other, 100, None, 1000) == store.page(other, 100, None, 1000)[0]
    assert seen == []
    # before the tail (its first slot is at 104): SQLite, the same answer as ever
    for lo, hi, limit in [(101, None, 1000), (103, None, 1000), (101, 102, 1000)]:
        assert store.quick_page(PID, lo, hi, limit) == store.page(PID, lo, hi, limit)[0]
    assert len(seen) == 3
    store.close()

    reopened = open_store(f"sqlite:///{tmp_path}/su.db")
    seen.clear()
    reopened._quick.set_trace_callback(seen.append)
    assert reopened.quick_page(PID, 107, None, 1000) == chain[-2:]
    assert len(seen) == 1
    # a slot written after the reopening starts a tail; the slots before it are not in it
    later = _chain(PID, [108], start=chain[-1])
    reopened.write_batch(later, [])
    assert reopened.quick_page(PID, 108, None, 1000) == []  # from memory: nothing after 108
    assert len(seen) == 1
    assert reopened.quick_page(PID, 107, None, 1000) == chain[-2:] + later
    assert len(seen) == 2

    monkeypatch.setattr(_store, "TAIL_PROCESSES", 2)
    pids = ["A" * 43, "B" * 43, "C" * 43]
    for pid in pids:
        reopened.write_batch(_chain(pid, [100]), [])
    assert list(reopened._tails) == pids[1:]  # PID's and A's tails left, the oldest written
    reopened.close()
