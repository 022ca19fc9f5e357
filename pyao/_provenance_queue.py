"""The provenance recorder's durable queue: signed records waiting for their upload, in SQLite.

Contract
--------
* Assumes: a file path (or None for an in-memory queue), reachable by every
  recorder that shares it (the CU's VM worker processes: SQLite's own locking,
  WAL, a busy timeout).
* Produces: ``RecordQueue``: ``add`` keeps one row per record key (process,
  message, sha256 of the output), the signed item's bytes and what the
  recorder needs to check the gateway; it is durable when ``add`` returns
  (``synchronous=FULL``). ``claim`` hands out the oldest row not done and not
  leased, leasing it for ``LEASE_S`` to this process (so recorders sharing the
  file do not upload the same row at once); a row leased by a process that is
  gone (the file is local, so its pid tells) is taken at once, any other once
  its lease runs out. ``done`` marks it uploaded. Done rows are kept, so
  a replay of the same message after a restart is not queued again.
* Side effects: the SQLite file (and its WAL).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyao._sql import wal_mode, when_unlocked

#: a claimed row is taken again by any recorder after this many seconds (its recorder died, or failed)
LEASE_S = 30.0
#: how often an idle recorder looks for rows another recorder (process) left behind
POLL_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS provenance_queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    item BLOB NOT NULL,
    process TEXT NOT NULL,
    message TEXT NOT NULL,
    data_hash TEXT NOT NULL,
    done INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    lease_pid INTEGER NOT NULL DEFAULT 0
)
"""


def record_key(gen: Any) -> str:
    """One record per (process, message, output)."""
    return f"{gen.process}/{gen.message}/{hashlib.sha256(gen.output).hexdigest()}"


@dataclass(frozen=True)
class QueuedRecord:
    seq: int
    item: bytes  # the signed data item, as it is uploaded
    process: str
    message: str
    data_hash: str


class RecordQueue:
    """See the module docstring. Thread-safe (one connection, one lock)."""

    def __init__(self, path: str | Path | None) -> None:
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            ":memory:" if path is None else str(path), timeout=30, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA synchronous=FULL")
            # every CU VM worker process opens this file as it starts: they may do so together
            when_unlocked(lambda: (wal_mode(self._db), self._db.execute(_SCHEMA)))

    def add(self, key: str, item: bytes, gen: Any) -> bool:
        """Queue a record (durable on return); False when its key was queued before."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO provenance_queue (key, item, process, message, data_hash) VALUES (?,?,?,?,?)",
                (key, item, gen.process, gen.message, hashlib.sha256(gen.output).hexdigest()),
            )
            return cur.rowcount == 1

    def claim(self, now: float | None = None) -> QueuedRecord | None:
        """The oldest row to upload, leased to the caller; None when there is none."""
        now = time.time() if now is None else now
        me = os.getpid()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT seq, item, process, message, data_hash, lease_until, lease_pid FROM provenance_queue "
                    "WHERE done = 0 ORDER BY seq LIMIT 256"
                ).fetchall()
                row = next((r for r in rows if r[5] <= now or (r[6] != me and not _alive(r[6]))), None)
                if row is not None:
                    self._db.execute(
                        "UPDATE provenance_queue SET lease_until = ?, lease_pid = ? WHERE seq = ?",
                        (now + LEASE_S, me, row[0]),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return None if row is None else QueuedRecord(row[0], bytes(row[1]), row[2], row[3], row[4])

    def done(self, seq: int) -> None:
        with self._lock:
            self._db.execute("UPDATE provenance_queue SET done = 1 WHERE seq = ?", (seq,))

    def pending(self) -> int:
        """Rows not uploaded yet (leased or not)."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM provenance_queue WHERE done = 0").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["LEASE_S", "POLL_S", "QueuedRecord", "RecordQueue", "record_key"]
