"""The MU's work queue on SQL: one schema and one set of queries, two dialects.

``open_store(url)`` picks the backend: ``sqlite:///path.db`` (default;
``sqlite://:memory:`` for tests) or ``postgresql://…``. The MU calls a store
from one worker thread only. SQLite runs in WAL mode with ``synchronous=FULL``;
PostgreSQL commits normally. Any driver error becomes ``StoreError`` after a
rollback.

Tables: ``mu_jobs`` (id, kind, payload JSON, attempts, next_at, state, error,
created), ``mu_monitors`` (process_id, cursor), ``mu_processes`` (process_id,
scheduler, module). Finished jobs are deleted; given-up ones stay ``failed``.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from pyao._sql import delete_keys, insert_rows, is_postgres, open_postgres, open_sqlite, sqlite_path
from pyao.abc import MessengerStore
from pyao.errors import StoreError
from pyao.mu._core import Job

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS mu_jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        next_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL,
        error TEXT,
        created DOUBLE PRECISION NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS mu_jobs_due ON mu_jobs (state, next_at, created)",
    "CREATE TABLE IF NOT EXISTS mu_monitors (process_id TEXT PRIMARY KEY, cursor TEXT)",
    """CREATE TABLE IF NOT EXISTS mu_processes (
        process_id TEXT PRIMARY KEY, scheduler TEXT NOT NULL, module TEXT NOT NULL
    )""",
)
COLUMNS = "id, kind, payload, attempts, next_at, state, error"


def _row(row: Sequence[Any]) -> Job:
    return Job(row[0], row[1], json.loads(row[2]), int(row[3]), float(row[4]), row[5], row[6])


class SqlMessengerStore(MessengerStore):
    """Queries shared by both dialects; subclasses supply the connection and a few spellings."""

    P = "?"
    driver_errors: tuple[type[BaseException], ...] = ()
    ignore = "INSERT OR IGNORE INTO"
    ignore_tail = ""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._closed = False

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """One transaction: commit on success, rollback and StoreError on a driver error."""
        try:
            cur = self._conn.cursor()
            yield cur
            self._conn.commit()
        except self.driver_errors as exc:
            with suppress(self.driver_errors):
                self._conn.rollback()
            raise StoreError(f"messenger store failed: {exc}") from exc
        except BaseException:  # never leave half a transaction for the next commit to keep
            with suppress(self.driver_errors):
                self._conn.rollback()
            raise

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.P)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Sequence[Any]]:
        with self._tx() as cur:
            return list(cur.execute(self._sql(sql), params).fetchall())

    def _insert_jobs(self, cur: Any, jobs: list[Any]) -> None:
        if not jobs:
            return
        now = time.time()
        rows = [
            (
                j.id,
                j.kind,
                json.dumps(j.payload, separators=(",", ":")),
                j.attempts,
                j.next_at,
                "pending",
                None,
                now + i * 1e-6,
            )
            for i, j in enumerate(jobs)
        ]
        insert_rows(cur, f"{self.ignore} mu_jobs VALUES", 8, rows, self.P, tail=self.ignore_tail)

    # ------------------------------------------------------------ jobs

    def add(self, jobs: list[Any]) -> None:
        with self._tx() as cur:
            self._insert_jobs(cur, jobs)

    def due(self, now: float, limit: int, skip: set[str] | frozenset[str] = frozenset()) -> list[Any]:
        rows = self._query(
            f"SELECT {COLUMNS} FROM mu_jobs WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, created LIMIT ?",
            (now, limit + len(skip)),
        )
        return [job for job in map(_row, rows) if job.id not in skip][:limit]

    def next_due(self) -> float | None:
        rows = self._query("SELECT MIN(next_at) FROM mu_jobs WHERE state = 'pending'")
        return float(rows[0][0]) if rows and rows[0][0] is not None else None

    def complete(self, job_id: str, children: list[Any]) -> None:
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM mu_jobs WHERE id = ?"), (job_id,))
            self._insert_jobs(cur, children)

    def write_batch(self, ops: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Many adds and completes, in their order, in one transaction: one fsync for all.

        When no job is both added and deleted in the batch (the usual case: a job is handed to
        the cranker only once its add is durable), order between the deletes and the inserts
        cannot matter, so all deletes go in one statement and all inserts in another (few steps:
        see ``insert_rows``); otherwise each op runs in turn."""
        unknown = {name for name, _ in ops} - {"add", "complete"}
        if unknown:
            raise ValueError(f"write_batch runs add and complete, not {sorted(unknown)}")
        added = [job for name, args in ops for job in (args[0] if name == "add" else args[1])]
        done = [args[0] for name, args in ops if name == "complete"]
        with self._tx() as cur:
            if {job.id for job in added}.isdisjoint(done):
                delete_keys(cur, "mu_jobs", "id", done, self.P)
                self._insert_jobs(cur, added)
                return
            for name, args in ops:
                if name == "add":
                    self._insert_jobs(cur, args[0])
                else:
                    cur.execute(self._sql("DELETE FROM mu_jobs WHERE id = ?"), (args[0],))
                    self._insert_jobs(cur, args[1])

    def retry(self, job_id: str, attempts: int, next_at: float, error: str) -> None:
        with self._tx() as cur:
            cur.execute(
                self._sql("UPDATE mu_jobs SET attempts = ?, next_at = ?, error = ? WHERE id = ?"),
                (attempts, next_at, error[:2000], job_id),
            )

    def fail(self, job_id: str, attempts: int, error: str) -> None:
        with self._tx() as cur:
            cur.execute(
                self._sql("UPDATE mu_jobs SET attempts = ?, state = 'failed', error = ? WHERE id = ?"),
                (attempts, error[:2000], job_id),
            )

    def jobs(self, state: str, limit: int) -> list[Any]:
        rows = self._query(
            f"SELECT {COLUMNS} FROM mu_jobs WHERE state = ? ORDER BY created LIMIT ?", (state, max(0, limit))
        )
        return [_row(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._query("SELECT state, COUNT(*) FROM mu_jobs GROUP BY state")
        return {"pending": 0, "failed": 0, **{str(state): int(n) for state, n in rows}}

    # ------------------------------------------------------------ processes

    def remember_process(self, process_id: str, scheduler: str, module: str) -> None:
        with self._tx() as cur:
            cur.execute(
                self._sql(f"{self.ignore} mu_processes VALUES (?, ?, ?){self.ignore_tail}"),
                (process_id, scheduler, module),
            )

    def process(self, process_id: str) -> tuple[str, str] | None:
        rows = self._query("SELECT scheduler, module FROM mu_processes WHERE process_id = ?", (process_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    # ------------------------------------------------------------ monitors

    def monitor(self, process_id: str) -> bool:
        with self._tx() as cur:
            cur.execute(self._sql(f"{self.ignore} mu_monitors VALUES (?, NULL){self.ignore_tail}"), (process_id,))
            return cur.rowcount == 1

    def unmonitor(self, process_id: str) -> bool:
        with self._tx() as cur:
            cur.execute(self._sql("DELETE FROM mu_monitors WHERE process_id = ?"), (process_id,))
            return cur.rowcount == 1

    def monitors(self) -> dict[str, str | None]:
        return {pid: cursor for pid, cursor in self._query("SELECT process_id, cursor FROM mu_monitors")}

    def advance(self, process_id: str, cursor: str, jobs: list[Any]) -> None:
        with self._tx() as cur:
            cur.execute(self._sql("UPDATE mu_monitors SET cursor = ? WHERE process_id = ?"), (cursor, process_id))
            if cur.rowcount == 1:
                self._insert_jobs(cur, jobs)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()


class SqliteMessengerStore(SqlMessengerStore):
    driver_errors = (sqlite3.Error,)

    def __init__(self, path: str) -> None:
        super().__init__(open_sqlite(path, SCHEMA, "messenger store"))


class PostgresMessengerStore(SqlMessengerStore):
    P = "%s"
    ignore = "INSERT INTO"
    ignore_tail = " ON CONFLICT DO NOTHING"

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.driver_errors = (psycopg.Error,)
        super().__init__(open_postgres(dsn, SCHEMA, "messenger store"))


def open_store(url: str) -> MessengerStore:
    """A messenger store for ``sqlite:///path`` (``sqlite://:memory:``) or ``postgresql://…``."""
    path = sqlite_path(url)
    if path is not None:
        return SqliteMessengerStore(path)
    if is_postgres(url):
        return PostgresMessengerStore(url)
    raise StoreError(f"unknown messenger store URL {url!r} (sqlite:///… or postgresql://…)")
