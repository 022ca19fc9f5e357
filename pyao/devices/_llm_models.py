"""Model files for ``llm@1.0``: drive item -> content-addressed local file -> one shared llama.cpp model.

Contract
--------
* Assumes: a ``FileDrive`` (WeaveDrive) that decides whether the process may
  read the path while handling the message; llama-cpp-python.
* Produces: ``ModelStore.get(path, process, msg)`` -> ``LoadedModel``. The
  first time a drive path is asked for, the item is streamed in 1 MiB ranges
  (never whole in memory) to ``cache_dir/<sha256>.gguf`` while hashing it; a
  small index (``cache_dir/by-path/``) remembers which file a path gave, so a
  restart does not read the item again. One llama.cpp model is loaded per file
  and shared by every process that uses it. The drive's access check runs on
  every ``get`` (a cached file is never a way around it).
* Side effects: files under ``cache_dir``; model memory (mmap) for the life of the store.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from pyao.abc import FileDrive, ProcessContext
from pyao.errors import DeviceError

CHUNK = 1 << 20  # bytes per ranged read while materialising
GGUF_MAGIC = b"GGUF"


@dataclass
class LoadedModel:
    """A llama.cpp model loaded once per file (``handle`` is a ``llama_cpp._internals.LlamaModel``)."""

    sha256: str
    path: Path
    handle: object
    n_params: int
    n_vocab: int
    n_ctx_train: int


def _safe_name(drive_path: str) -> str:
    return hashlib.sha256(drive_path.encode()).hexdigest()


class ModelStore:
    """Content-addressed model cache and the shared loaded models (see the module docstring)."""

    def __init__(self, drive: FileDrive | None, cache_dir: str | Path) -> None:
        self.drive = drive
        self.cache_dir = Path(cache_dir)
        (self.cache_dir / "by-path").mkdir(parents=True, exist_ok=True)
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, drive_path: str, process: ProcessContext, msg: dict) -> LoadedModel:
        """The model at ``drive_path`` as ``process`` may read it while handling ``msg``."""
        if self.drive is None:
            raise DeviceError("no WeaveDrive on this compute unit: models cannot be opened")
        drive_file = self.drive.open(drive_path, process, msg)  # the access check, every time
        try:
            sha = self._known(drive_path, drive_file.size) or self._materialise(drive_path, drive_file)
        finally:
            drive_file.close()
        model = self.by_sha(sha)
        if model is None:  # the cache file went away between the two steps
            raise DeviceError(f"{drive_path}: the cached model file disappeared")
        return model

    def for_session(self, drive_path: str, sha: str, process: ProcessContext, msg: dict) -> LoadedModel:
        """The model a session names: loaded already, in the cache, or read again from the drive
        (a unit restoring a checkpoint it did not make); the bytes must still hash to ``sha``."""
        model = self.by_sha(sha)
        if model is None:
            model = self.get(drive_path, process, msg)
            if model.sha256 != sha:
                raise DeviceError(f"{drive_path} no longer holds the model this session was started with")
        return model

    def by_sha(self, sha: str) -> LoadedModel | None:
        """A model already materialised on this unit, loaded on first use; None if not in the cache."""
        with self._lock:
            model = self._loaded.get(sha)
            if model is None:
                path = self.cache_dir / f"{sha}.gguf"
                if not path.exists():
                    return None
                model = self._loaded[sha] = _load(sha, path)
            return model

    def _known(self, drive_path: str, size: int) -> str | None:
        index = self.cache_dir / "by-path" / _safe_name(drive_path)
        if not index.exists():
            return None
        sha = index.read_text().strip()
        cached = self.cache_dir / f"{sha}.gguf"
        return sha if cached.exists() and cached.stat().st_size == size else None

    def _materialise(self, drive_path: str, drive_file) -> str:
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.cache_dir, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                offset = 0
                while offset < drive_file.size:
                    block = drive_file.read(offset, min(CHUNK, drive_file.size - offset))
                    if not block:
                        raise DeviceError(f"{drive_path} ended at byte {offset} of {drive_file.size}")
                    if offset == 0 and not block.startswith(GGUF_MAGIC):
                        raise DeviceError(f"{drive_path} is not a GGUF model file")
                    digest.update(block)
                    out.write(block)
                    offset += len(block)
            sha = digest.hexdigest()
            os.replace(tmp, self.cache_dir / f"{sha}.gguf")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        (self.cache_dir / "by-path" / _safe_name(drive_path)).write_text(sha)
        return sha


def _load(sha: str, path: Path) -> LoadedModel:
    import llama_cpp
    from llama_cpp import _internals

    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0  # CPU only: the same floats on every unit
    params.use_mmap = True
    try:
        handle = _internals.LlamaModel(path_model=str(path), params=params, verbose=False)
    except ValueError as exc:
        raise DeviceError(f"llama.cpp cannot load model {sha[:12]}…: {exc}") from None
    return LoadedModel(
        sha256=sha,
        path=path,
        handle=handle,
        n_params=int(handle.n_params()),
        n_vocab=int(handle.n_vocab()),
        n_ctx_train=int(handle.n_ctx_train()),
    )


__all__ = ["LoadedModel", "ModelStore"]
