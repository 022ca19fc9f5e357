"""Plain ``FileDrive``s for tests of ``llm@1.0`` (no unit builds them: CUs use ``weavedrive@1.0``).

Contract
--------
* ``GatewayRawDrive(url)``: ``/data/<id>`` read by ranged ``GET /raw/<id>``
  from a gateway (1 MiB reads; the size from the ``Content-Range`` answer). It
  applies **no** WeaveDrive admission rule (no Extension, Availability-Type or
  attestation check): a test helper (counting ranged reads against a real
  gateway), never a unit's drive.
* ``DirectoryDrive(mapping)``: ``/data/<id>`` from local files (``id -> path``),
  for unit tests. Unknown ids raise ``NotFound``.
* Both refuse any path other than ``/data/<43-char id>`` with ``DeviceAccessDenied``.
* Side effects: HTTP reads (GatewayRawDrive), file reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from pyao.abc import DriveFile, FileDrive, ProcessContext
from pyao.errors import DeviceAccessDenied, DeviceError, NotFound

_DATA_PATH = re.compile(r"^/data/([A-Za-z0-9_-]{43})$")


def data_id(path: str) -> str:
    m = _DATA_PATH.match(path)
    if not m:
        raise DeviceAccessDenied(f"{path!r}: only /data/<id> can be opened here")
    return m.group(1)


class _LocalFile(DriveFile):
    def __init__(self, path: Path) -> None:
        self._f = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.size = path.stat().st_size

    def read(self, offset: int, length: int) -> bytes:
        if offset >= self.size or length <= 0:
            return b""
        self._f.seek(offset)
        return self._f.read(length)

    def close(self) -> None:
        self._f.close()


class DirectoryDrive(FileDrive):
    """``/data/<id>`` from local files (unit tests)."""

    def __init__(self, files: dict[str, Path] | None = None) -> None:
        self.files: dict[str, Path] = dict(files or {})

    def open(self, path: str, process: ProcessContext, msg: dict) -> DriveFile:
        item = data_id(path)
        if item not in self.files:
            raise NotFound(f"{path}: no such item")
        return _LocalFile(self.files[item])


class _GatewayFile(DriveFile):
    def __init__(self, client: httpx.Client, item: str, size: int) -> None:
        self._client, self._item, self.size = client, item, size

    def read(self, offset: int, length: int) -> bytes:
        if offset >= self.size or length <= 0:
            return b""
        end = min(self.size, offset + length) - 1
        r = self._client.get(f"/raw/{self._item}", headers={"range": f"bytes={offset}-{end}"})
        if r.status_code not in (200, 206):
            raise DeviceError(f"gateway answered {r.status_code} reading /data/{self._item}")
        return r.content[: end - offset + 1] if r.status_code == 206 else r.content[offset : end + 1]


class GatewayRawDrive(FileDrive):
    """``/data/<id>`` by ranged reads of a gateway's ``/raw/<id>`` (no admission rules; see the docstring)."""

    def __init__(self, gateway_url: str, *, timeout: float = 60.0) -> None:
        self._client = httpx.Client(base_url=gateway_url, timeout=timeout)

    def open(self, path: str, process: ProcessContext, msg: dict) -> DriveFile:
        item = data_id(path)
        r = self._client.get(f"/raw/{item}", headers={"range": "bytes=0-0"})
        if r.status_code == 404:
            raise NotFound(f"{path}: no such item on the gateway")
        if r.status_code == 416:  # an empty item
            return _GatewayFile(self._client, item, 0)
        if r.status_code != 206 or "/" not in r.headers.get("content-range", ""):
            raise DeviceError(f"gateway answered {r.status_code} to a ranged read of {path}")
        return _GatewayFile(self._client, item, int(r.headers["content-range"].rsplit("/", 1)[1]))

    def close(self) -> None:
        self._client.close()


__all__ = ["DirectoryDrive", "GatewayRawDrive", "data_id"]
