"""The result store on SQL: one schema and one set of queries, two dialects.

``open_result_store(url)`` picks the backend: ``sqlite:///path.db`` (default;
``sqlite://:memory:`` for tests) or ``postgresql://…``. The CU calls a store
from one thread only (and each VM worker process from its own connection).
SQLite runs in WAL mode with ``synchronous=NORMAL`` (why: ``SqliteResultStore``);
PostgreSQL commits normally. Any driver error becomes ``StoreError`` after a
rollback.

One row per evaluation, keyed by ``(process_id, seq)``; ``result`` is the
result JSON (UTF-8 text), ``is_error`` says whether it holds an ``Error``.

Recent results: the result JSON of the last ``RECENT_RESULTS`` evaluations of
scheduled messages this store committed stays in memory (``recent_result``,
``by_message``), because the MU asks for each one right after it is stored.
It is filled only after a commit that inserted every row of the batch, with
the text written, so it never answers anything the database does not hold.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from pyao._sql import is_postgres, open_postgres, open_sqlite, sqlite_path
from pyao.abc import Evaluation, ResultStore
from pyao.errors import StoreError

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS cu_evaluations (
        process_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        message_id TEXT,
        ordinate BIGINT NOT NULL,
        cron TEXT,
        timestamp BIGINT NOT NULL,
        block_height BIGINT NOT NULL,
        is_error SMALLINT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (process_id, seq)
    )""",
    "CREATE INDEX IF NOT EXISTS cu_evaluations_message ON cu_evaluations (process_id, message_id)",
    "CREATE INDEX IF NOT EXISTS cu_evaluations_time ON cu_evaluations (process_id, timestamp, ordinate)",
)
COLUMNS = "process_id, seq, message_id, ordinate, cron, timestamp, block_height, result, is_error"
#: results of scheduled messages kept in memory after their commit (count; larger results are not kept)
RECENT_RESULTS = 20_000
RECENT_RESULT_MAX_BYTES = 64 * 1024


def _row(row: Sequence[Any]) -> Evaluation:
    return Evaluation(row[0], int(row[1]), row[2], int(row[3]), row[4], int(row[5]), int(row[6]), row[7],
                      bool(row[8]))  # fmt: skip


def recent_results(evaluations: list[Evaluation]) -> list[tuple[str, str]]:
    """(message id, result JSON) of the scheduled messages among ``evaluations`` worth holding in memory."""
    return [
        (e.message_id, e.result_json)
        for e in evaluations
        if e.message_id is not None and len(e.result_json) <= RECENT_RESULT_MAX_BYTES
    ]


def _dump(e: Evaluation) -> tuple:
    return (e.process_id, e.seq, e.message_id, e.ordinate, e.cron, e.timestamp, e.block_height, int(e.is_error),
            e.result_json)  # fmt: skip


class SqlResultStore(ResultStore):
    """Queries shared by both dialects; subclasses supply the connection and a few spellings."""

    P = "?"
    driver_errors: tuple[type[BaseException], ...] = ()
    insert_sql = ""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._closed = False
        #: (process_id, message_id) -> its result JSON, oldest first
        self._recent: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._recent_lock = threading.Lock()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self.driver_errors as exc:
            self._rollback()
            raise StoreError(f"result store failed: {exc}") from exc

    def _rollback(self) -> None:
        with suppress(self.driver_errors):
            self._conn.rollback()

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with self._errors():
            rows = list(self._conn.execute(sql.replace("?", self.P), params).fetchall())
            self._conn.commit()  # end the read transaction (PostgreSQL would hold it open)
            return rows

    def put(self, evaluations: list[Evaluation]) -> int:
        if not evaluations:
            return 0
        rows = [_dump(e) for e in evaluations]
        with self._errors():
            cur = self._conn.cursor()
            cur.executemany(self.insert_sql.replace("?", self.P), rows)
            inserted = cur.rowcount
            self._conn.commit()
        if inserted == len(rows) and evaluations[0].process_id == evaluations[-1].process_id:
            # a replay (some rows kept as they were) is not remembered
            self.remember(evaluations[0].process_id, recent_results(evaluations))
        return inserted

    def put_groups(self, groups: list[list[Evaluation]]) -> list[int]:
        """Every group in one transaction (a VM worker's pages of several processes: one commit)."""
        inserted = []
        with self._errors():
            cur = self._conn.cursor()
            sql = self.insert_sql.replace("?", self.P)
            for group in groups:
                if group:
                    cur.executemany(sql, [_dump(e) for e in group])
                inserted.append(cur.rowcount if group else 0)
            self._conn.commit()
        return inserted

    def remember(self, process_id: str, results: list[tuple[str, str]]) -> None:
        """Committed results of scheduled messages, kept for ``recent_result`` (bounded, FIFO)."""
        with self._recent_lock:
            for message_id, text in results:
                key = (process_id, message_id)
                if key not in self._recent:  # the first evaluation of a message is the one stored
                    self._recent[key] = text
            # popitem, not del of next(iter(...)): that walks the dict's deleted slots from the
            # front each time (it cost more than the rest of the coordinator's work per message)
            while len(self._recent) > RECENT_RESULTS:
                self._recent.popitem(last=False)

    def recent_result(self, process_id: str, message_id: str) -> bytes | None:
        held = self._recent.get((process_id, message_id))
        return None if held is None else held.encode("utf-8")

    def holds_recent(self, process_id: str, message_id: str) -> bool:
        """Whether ``recent_result`` has this message's result (without encoding it)."""
        return (process_id, message_id) in self._recent

    def by_message(self, process_id: str, message_id: str) -> Evaluation | None:
        rows = self._query(
            f"SELECT {COLUMNS} FROM cu_evaluations WHERE process_id = ? AND message_id = ? ORDER BY seq LIMIT 1",
            (process_id, message_id),
        )
        return _row(rows[0]) if rows else None

    def at(self, process_id: str, timestamp: int, ordinate: int, cron: str | None) -> Evaluation | None:
        cron_sql = "cron IS NULL" if cron is None else "cron = ?"
        params: list[Any] = [process_id, timestamp, ordinate] + ([] if cron is None else [cron])
        rows = self._query(
            f"SELECT {COLUMNS} FROM cu_evaluations WHERE process_id = ? AND timestamp = ? AND ordinate = ?"
            f" AND {cron_sql} ORDER BY seq LIMIT 1",
            params,
        )
        return _row(rows[0]) if rows else None

    def last(self, process_id: str) -> Evaluation | None:
        rows = self._query(
            f"SELECT {COLUMNS} FROM cu_evaluations WHERE process_id = ? ORDER BY seq DESC LIMIT 1", (process_id,)
        )
        return _row(rows[0]) if rows else None

    def page(
        self,
        process_id: str,
        *,
        limit: int,
        descending: bool = False,
        only_cron: bool = False,
        seq_gt: int | None = None,
        seq_lt: int | None = None,
        seq_ge: int | None = None,
        seq_le: int | None = None,
        ts_ge: int | None = None,
        ts_le: int | None = None,
    ) -> list[Evaluation]:
        where = ["process_id = ?", "is_error = 0"]
        params: list[Any] = [process_id]
        if only_cron:
            where.append("cron IS NOT NULL")
        bounds = (("seq >", seq_gt), ("seq <", seq_lt), ("seq >=", seq_ge), ("seq <=", seq_le))
        bounds += (("timestamp >=", ts_ge), ("timestamp <=", ts_le))
        for op, value in bounds:
            if value is not None:
                where.append(f"{op} ?")
                params.append(value)
        order = "DESC" if descending else "ASC"
        sql = f"SELECT {COLUMNS} FROM cu_evaluations WHERE {' AND '.join(where)} ORDER BY seq {order} LIMIT ?"
        return [_row(r) for r in self._query(sql, [*params, max(0, limit)])]

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()


class SqliteResultStore(SqlResultStore):
    driver_errors = (sqlite3.Error,)
    insert_sql = "INSERT OR IGNORE INTO cu_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"

    def __init__(self, path: str) -> None:
        # NORMAL, not FULL: the results are a cache of a deterministic replay of the SU's log. A power
        # cut may lose the last commits (never corrupt the file); a checkpoint ahead of the store is
        # then ignored and the lost evaluations are redone, identically. FULL costs an fsync per
        # commit (~5 ms here), and live traffic commits a page of one message at a time.
        super().__init__(open_sqlite(path, SCHEMA, "result store", synchronous="NORMAL"))
        # the WAL is copied back into the database (and synced) every 10,000 pages instead of 1,000:
        # a replay writes pages of 1,000 results, and the copies cost more than the inserts
        self._conn.execute("PRAGMA wal_autocheckpoint=10000")
        self.shared_url = None if path == ":memory:" else f"sqlite://{path}"


class PostgresResultStore(SqlResultStore):
    P = "%s"
    insert_sql = "INSERT INTO cu_evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.driver_errors = (psycopg.Error,)
        super().__init__(open_postgres(dsn, SCHEMA, "result store"))
        self.shared_url = dsn


def open_result_store(url: str) -> ResultStore:
    """A result store for ``sqlite:///path`` (``sqlite://:memory:``) or ``postgresql://…``."""
    path = sqlite_path(url)
    if path is not None:
        return SqliteResultStore(path)
    if is_postgres(url):
        return PostgresResultStore(url)
    raise StoreError(f"unknown result store URL {url!r} (sqlite:///… or postgresql://…)")
