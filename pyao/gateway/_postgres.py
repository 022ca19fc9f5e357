"""The PostgreSQL backend (psycopg 3), for a gateway shared by many hosts.

A small pool of autocommit connections serves reads; each write runs in one
transaction that first takes a transaction-scoped advisory lock, so ingest and
seal are serialised across every process using the database (the ordering
fact of ``_model``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

import psycopg

from pyao.errors import StoreError
from pyao.gateway._sql import SqlStore

#: The advisory lock key that serialises the gateway's writers.
_WRITE_LOCK = 0x70_79_61_6F_67_77  # "pyaogw"


class PostgresStore(SqlStore):
    placeholder = "%s"

    def __init__(self, dsn: str, *, pool_size: int = 8) -> None:
        self.dsn = dsn
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._closed = False
        with self._write() as conn:
            self._init_schema(conn, serial="BIGSERIAL", blob="BYTEA")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        if self._closed:
            raise StoreError("the store is closed")
        if not self._slots.acquire(timeout=60):
            raise StoreError("no PostgreSQL connection became free within 60 s")
        conn: psycopg.Connection | None = None
        try:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10)
            yield conn
        except psycopg.Error as exc:
            if conn is not None:
                conn.close()
                conn = None
            raise StoreError(f"PostgreSQL: {exc}") from exc
        finally:
            if conn is not None:
                idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                if idle and not conn.closed and not self._closed:
                    self._idle.put(conn)
                else:
                    conn.close()
            self._slots.release()

    @contextlib.contextmanager
    def _write(self) -> Iterator[psycopg.Connection]:
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
            yield conn

    def _next_seqs(self, conn: psycopg.Connection, count: int) -> list[int]:
        rows = conn.execute(
            "SELECT nextval(pg_get_serial_sequence('gw_items', 'seq')) FROM generate_series(1, %s)", (count,)
        ).fetchall()
        return sorted(row[0] for row in rows)

    async def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def __repr__(self) -> str:
        return f"PostgresStore({self.dsn.split('@')[-1]!r})"
