"""What every unit's SQL store shares: database URLs and opening a durable connection.

URLs: ``sqlite:///abs/path.db``, ``sqlite:////abs/path.db``, ``sqlite://relative.db``,
``sqlite://:memory:`` (also ``sqlite:///:memory:`` or ``sqlite://``), ``postgresql://…``.
SQLite connections run in WAL mode with ``synchronous=FULL``: a commit is durable (the CU's
result store, a recomputable cache, asks for ``NORMAL``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
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


#: WAL pages a committing connection lets gather before it copies them into the database file
#: (SQLite's default: 1,000). A page rewritten by many commits is copied once per checkpoint, so
#: rarer checkpoints copy fewer pages: the gateway's ingest (a growing database, ~5 pages a slot)
#: took 8% less CPU and 30% less time. (The SU's and MU's stores measured no different.) The WAL
#: file grows to ~40 MB; every commit is as durable as before (it is in the WAL, synced).
WAL_CHECKPOINT_PAGES = 10_000


def checkpoint_rarely(conn: sqlite3.Connection) -> None:
    """Checkpoint ``conn``'s database every ``WAL_CHECKPOINT_PAGES`` pages (a per-connection setting:
    call it on the connection that commits)."""
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")


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


#: the most rows one multi-row INSERT carries (a power of two: see ``insert_rows``)
MAX_ROWS_PER_INSERT = 256


def _chunk_sizes(count: int) -> Iterable[int]:
    """``count`` as power-of-two chunks of at most ``MAX_ROWS_PER_INSERT``, largest first."""
    while count > 0:
        size = min(MAX_ROWS_PER_INSERT, 1 << (count.bit_length() - 1))
        yield size
        count -= size


def insert_rows(
    cur: Any, head: str, width: int, rows: Sequence[Sequence[Any]], placeholder: str = "?", *, tail: str = ""
) -> None:
    """``head`` (``INSERT INTO t (a, b) VALUES``) for every row, then ``tail`` (``ON CONFLICT DO
    NOTHING``), in few multi-row statements.

    Why not ``executemany``: it steps once per row, and ``sqlite3`` lets go of the GIL around each
    step. On a store's worker thread, while the event loop wants the GIL, every step is then a hand-off
    of the GIL and back (two context switches). One statement of many rows lets go of it once.
    The rows go in chunks of power-of-two sizes (37 rows: 32, 4, 1), so a few statement texts
    serve every batch size and stay in the driver's statement cache."""
    at = 0
    for size in _chunk_sizes(len(rows)):
        part = rows[at : at + size]
        cur.execute(_multi_row(head, width, size, placeholder, tail), [value for row in part for value in row])
        at += size


def delete_keys(cur: Any, table: str, column: str, keys: Sequence[Any], placeholder: str = "?") -> None:
    """``DELETE FROM table WHERE column IN (…)`` for every key, in chunks as ``insert_rows``'s."""
    at = 0
    for size in _chunk_sizes(len(keys)):
        cur.execute(_key_list(table, column, size, placeholder), list(keys[at : at + size]))
        at += size


@lru_cache(maxsize=64)
def _key_list(table: str, column: str, keys: int, placeholder: str) -> str:
    return f"DELETE FROM {table} WHERE {column} IN ({', '.join([placeholder] * keys)})"


@lru_cache(maxsize=256)
def _multi_row(head: str, width: int, rows: int, placeholder: str, tail: str = "") -> str:
    one = "(" + ", ".join([placeholder] * width) + ")"
    return f"{head} {', '.join([one] * rows)}{tail}"


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
