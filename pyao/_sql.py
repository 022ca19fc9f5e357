"""What every unit's SQL store shares: database URLs and opening a durable connection.

URLs: ``sqlite:///abs/path.db``, ``sqlite:////abs/path.db``, ``sqlite://relative.db``,
``sqlite://:memory:`` (also ``sqlite:///:memory:`` or ``sqlite://``), ``postgresql://…``.
SQLite connections run in WAL mode with ``synchronous=FULL``: a commit is durable (the CU's
result store, a recomputable cache, asks for ``NORMAL``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from pyao.errors import StoreError

T = TypeVar("T")

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def sqlite_path(url: str) -> str | None:
    """The file path of a ``sqlite://`` URL (``":memory:"`` for an in-memory one), else None."""
    if not url.startswith("sqlite://"):
        return None
    path = url[len("sqlite://") :]
    if path in (":memory:", "/:memory:", ""):
        return ":memory:"
    return path[1:] if path.startswith("//") else path


def is_postgres(url: str) -> bool:
    return url.startswith(POSTGRES_SCHEMES)


def open_sqlite(path: str, schema: Iterable[str], what: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """A durable SQLite connection with ``schema`` applied; StoreError if it cannot be opened.
    ``synchronous="NORMAL"`` is only for stores whose last commits may be lost to a power cut
    (a cache that is recomputed): it saves an fsync per commit (~5 ms on a virtual disk)."""
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
        conn.execute(f"PRAGMA synchronous={'NORMAL' if synchronous == 'NORMAL' else 'FULL'}")

        def prepare() -> None:
            wal_mode(conn)
            for statement in schema:
                conn.execute(statement)
            conn.commit()

        when_unlocked(prepare)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {what} {path!r}: {exc}") from exc
    return conn


def wal_mode(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (kept in the file: a database already in it is left alone)."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        conn.execute("PRAGMA journal_mode=WAL")


def when_unlocked(step: Callable[[], T], tries: int = 200, pause_s: float = 0.05) -> T:
    """``step()``, again while SQLite says the database is locked. Changing the journal mode or the
    schema answers "locked" at once, without the busy timeout, while another connection opens the
    same file (two CU worker processes starting together)."""
    for attempt in range(tries):
        try:
            return step()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == tries - 1:
                raise
            time.sleep(pause_s)
    raise AssertionError("unreachable")


def open_postgres(dsn: str, schema: Iterable[str], what: str) -> Any:
    """A PostgreSQL connection (psycopg 3) with ``schema`` applied; StoreError if it cannot be opened."""
    import psycopg

    try:
        conn = psycopg.connect(dsn)
        for statement in schema:
            conn.execute(statement)
        conn.commit()
    except psycopg.Error as exc:
        raise StoreError(f"cannot open {what}: {exc}") from exc
    return conn
