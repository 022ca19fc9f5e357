"""The embedded backend: one SQLite file (WAL, synchronous=FULL), or memory.

One connection, guarded by a lock: SQLite serialises writers anyway, and the
gateway's reads are short (one page, or a few chunks at a time). Writes run in
``BEGIN IMMEDIATE`` transactions, which also serialise ingest and seal against
any other process that opens the same file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from pyao._sql import checkpoint_rarely
from pyao.errors import StoreError
from pyao.gateway._sql import SqlStore


class SqliteStore(SqlStore):
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                checkpoint_rarely(self._conn)
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        with self._write() as conn:
            self._init_schema(conn, serial="INTEGER", blob="BLOB")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite: {exc}") from exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite: {exc}") from exc
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self._conn.execute("ROLLBACK")
                raise StoreError(f"SQLite: {exc}") from exc
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._conn.execute("ROLLBACK")
                    raise StoreError(f"SQLite: {exc}") from exc

    def _next_seqs(self, conn: sqlite3.Connection, count: int) -> list[int]:
        # what SQLite itself gives an INTEGER PRIMARY KEY row inserted without one: max + 1
        top = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM gw_items").fetchone()[0]
        return list(range(top + 1, top + 1 + count))

    async def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"
