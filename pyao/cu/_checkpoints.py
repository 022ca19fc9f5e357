"""Process checkpoints on disk: a restarted CU restores a process instead of replaying its history.

Contract
--------
* A checkpoint is the VM snapshot of a process after evaluation ``seq`` plus
  the engine's position there (next nonce, SU cursor, expected hash chain, cron
  boundaries, the last evaluation), in one file:
  ``<dir>/<process id>/<seq as 20 digits>.ckpt`` =
  ``MAGIC ‖ u32 header length ‖ header JSON ‖ zlib(snapshot)``. The header holds
  the snapshot's SHA-256, the module id and format, so a damaged or foreign
  file is refused (``SnapshotError``) rather than restored.
* Writes are atomic (temporary file, fsync, rename, fsync of the directory):
  a crash leaves the previous checkpoint intact. The newest ``keep`` files per
  process are kept.
* ``latest`` yields a process's checkpoints newest first, each already
  checked; the engine restores the first its VM accepts.
* Blocking file I/O: the engine calls these from a worker thread.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pyao.errors import SnapshotError

MAGIC = b"PYAO-CU-CHECKPOINT-1\n"
log = logging.getLogger("pyao.cu")


@dataclass(frozen=True)
class Position:
    """Where a process's evaluation stands after its last evaluation (the engine's resume point)."""

    next_seq: int
    next_nonce: int
    cursor: int | None
    expected_chain: str
    left_height: int | None
    left_timestamp: int | None
    left_ordinate: int
    cron_until: int
    #: the last evaluation (``Evaluation`` fields as a dict), answered by ``GET /state``
    last: dict[str, Any] | None


@dataclass(frozen=True)
class Checkpoint:
    process_id: str
    module_id: str
    module_format: str
    position: Position
    snapshot: bytes


class CheckpointStore:
    """Checkpoint files under one directory (see the module docstring)."""

    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.directory = Path(directory)
        self.keep = max(1, keep)

    def _dir(self, process_id: str) -> Path:
        if not process_id or "/" in process_id or process_id.startswith("."):
            raise SnapshotError(f"not a process id: {process_id!r}")
        return self.directory / process_id

    def save(self, checkpoint: Checkpoint) -> Path:
        folder = self._dir(checkpoint.process_id)
        folder.mkdir(parents=True, exist_ok=True)
        header = {
            "process": checkpoint.process_id,
            "module": checkpoint.module_id,
            "format": checkpoint.module_format,
            "sha256": hashlib.sha256(checkpoint.snapshot).hexdigest(),
            "position": asdict(checkpoint.position),
        }
        head = json.dumps(header, separators=(",", ":")).encode()
        body = zlib.compress(checkpoint.snapshot, 3)
        path = folder / f"{checkpoint.position.next_seq - 1:020d}.ckpt"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack(">I", len(head)) + head + body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
        for old in sorted(folder.glob("*.ckpt"))[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def latest(self, process_id: str) -> Iterator[Checkpoint]:
        """The process's readable checkpoints, newest first (damaged files are skipped, with a warning)."""
        folder = self._dir(process_id)
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.ckpt"), reverse=True):
            try:
                yield self.read(path, process_id)
            except SnapshotError as exc:
                log.warning("skipping checkpoint %s: %s", path, exc)

    @staticmethod
    def read(path: Path, process_id: str) -> Checkpoint:
        try:
            data = path.read_bytes()
            if not data.startswith(MAGIC):
                raise ValueError("not a pyao checkpoint")
            pos = len(MAGIC)
            (hlen,) = struct.unpack_from(">I", data, pos)
            header = json.loads(data[pos + 4 : pos + 4 + hlen])
            snapshot = zlib.decompress(data[pos + 4 + hlen :])
            position = Position(**header["position"])
        except (OSError, ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
            raise SnapshotError(f"damaged checkpoint: {exc}") from None
        if hashlib.sha256(snapshot).hexdigest() != header.get("sha256"):
            raise SnapshotError("checkpoint snapshot does not match its SHA-256")
        if header.get("process") != process_id:
            raise SnapshotError(f"checkpoint belongs to process {header.get('process')!r}")
        return Checkpoint(process_id, header["module"], header["format"], position, snapshot)

    def drop(self, process_id: str) -> None:
        """Forget a process's checkpoints (for tests and operators)."""
        folder = self._dir(process_id)
        for path in folder.glob("*.ckpt"):
            path.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["Checkpoint", "CheckpointStore", "Position"]
