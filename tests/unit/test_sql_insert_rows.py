"""``pyao._sql.insert_rows``: every row goes in, in order, in few multi-row statements whose texts
repeat (power-of-two chunks), on SQLite and with PostgreSQL's placeholder."""

from __future__ import annotations

import sqlite3

import pytest

from pyao._sql import MAX_ROWS_PER_INSERT, insert_rows


class CountingConnection:
    """An SQLite connection that records each statement it is asked to run."""

    def __init__(self) -> None:
        self.conn = sqlite3.connect(":memory:")
        self.conn.execute("CREATE TABLE t (n INTEGER, label TEXT, raw BLOB)")
        self.statements: list[str] = []

    def execute(self, sql: str, params: list) -> None:
        self.statements.append(sql)
        self.conn.execute(sql, params)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 37, 255, 256, 257, 600])
def test_every_row_goes_in_in_order(count: int) -> None:
    db = CountingConnection()
    rows = [(n, f"row {n}", bytes([n % 256]) * 3) for n in range(count)]
    insert_rows(db, "INSERT INTO t (n, label, raw) VALUES", 3, rows)
    assert db.conn.execute("SELECT n, label, raw FROM t ORDER BY rowid").fetchall() == rows
    # one statement per power of two in the count (chunks of at most MAX_ROWS_PER_INSERT)
    full, rest = divmod(count, MAX_ROWS_PER_INSERT)
    assert len(db.statements) == full + rest.bit_count()
    assert len(set(db.statements)) <= 1 + (MAX_ROWS_PER_INSERT - 1).bit_length()


def test_statement_texts_are_shared_between_batches_of_different_sizes() -> None:
    db = CountingConnection()
    for count in (5, 6, 7, 12):
        insert_rows(db, "INSERT INTO t (n, label, raw) VALUES", 3, [(n, "x", b"") for n in range(count)])
    # 4+1, 4+2, 4+2+1, 8+4: only the texts for 1, 2, 4 and 8 rows
    assert len(set(db.statements)) == 4


def test_placeholder_is_the_drivers() -> None:
    seen: list[str] = []

    class Recorder:
        def execute(self, sql: str, params: list) -> None:
            seen.append(sql)
            assert len(params) == sql.count("%s")

    insert_rows(Recorder(), "INSERT INTO t (a, b) VALUES", 2, [(1, 2), (3, 4), (5, 6)], "%s")
    assert seen == ["INSERT INTO t (a, b) VALUES (%s, %s), (%s, %s)", "INSERT INTO t (a, b) VALUES (%s, %s)"]
