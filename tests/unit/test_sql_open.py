"""SQLite answers "database is locked" at once, without its busy timeout, to a journal-mode or
schema change while another connection opens the same file (two CU worker processes starting
together opened the provenance queue so, and one of them died). Opening retries those."""

from __future__ import annotations

import sqlite3

import pytest

from pyao._sql import open_sqlite, when_unlocked


def test_a_locked_step_is_tried_again_and_other_errors_are_not():
    calls = []

    def locked_twice():
        calls.append(1)
        if len(calls) < 3:
            raise sqlite3.OperationalError("database is locked")
        return "done"

    assert when_unlocked(locked_twice, pause_s=0) == "done" and len(calls) == 3

    def broken():
        calls.append(2)
        raise sqlite3.OperationalError("no such table: x")

    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        when_unlocked(broken, pause_s=0)
    assert calls.count(2) == 1

    def always_locked():
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        when_unlocked(always_locked, tries=3, pause_s=0)


def test_a_store_in_wal_mode_is_opened_without_changing_its_journal_mode(tmp_path):
    path = str(tmp_path / "s.db")
    schema = ("CREATE TABLE IF NOT EXISTS t (a INTEGER)",)
    open_sqlite(path, schema, "test store").close()
    reader = sqlite3.connect(path)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # a reader mid-transaction, as another worker's
    conn = open_sqlite(path, schema, "test store")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader.close()
    conn.close()


def test_the_gateways_sqlite_store_checkpoints_rarely(tmp_path):
    from pyao._sql import WAL_CHECKPOINT_PAGES
    from pyao.gateway._sqlite import SqliteStore

    store = SqliteStore(tmp_path / "gw.db")
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == WAL_CHECKPOINT_PAGES > 1000
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: commits stay durable
