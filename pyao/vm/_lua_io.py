"""The host side of ``io.open`` in the native Lua VM: WeaveDrive files for one process.

Contract
--------
* Assumes: a ``FileDrive`` (``weavedrive@1.0``) and the process it serves.
  ``_host.lua`` calls the bridge as ``bridge(op, path, height, offset, length)``
  with ``op`` ``b"open"`` or ``b"read"`` and ``height`` the Block-Height of the
  message being handled (nil while the module boots).
* Produces: ``(True, size)`` for an open, ``(True, bytes)`` for a read (at most
  ``MAX_READ`` bytes; ``b""`` at or past the end); ``(False, message)`` when
  the path is not a WeaveDrive path or the drive refuses or fails (the Lua side
  raises it, so the message gets an Error result and never data).
* Side effects: none of its own; the Lua file object keeps the position, so
  files survive snapshots. The last ``MAX_OPEN`` opened files are remembered by
  path; a read of a path not remembered (dropped, or after a restore) opens it
  again under the current message's height, which is never below the height it
  was first opened at, so the access answer is the same.
"""

from __future__ import annotations

from collections import OrderedDict

from pyao.abc import DriveFile, FileDrive, ProcessContext
from pyao.errors import NotFound, PyaoError

#: the most one host read returns; the Lua side loops for more
MAX_READ = 1024 * 1024
#: opened files kept per process (a /tx or /block file holds its bytes)
MAX_OPEN = 64


class LuaDriveBridge:
    def __init__(self, drive: FileDrive, process: ProcessContext) -> None:
        self.drive, self.process = drive, process
        #: opened files by path, the most recently used last (at most MAX_OPEN; one dropped is reopened)
        self.files: OrderedDict[str, DriveFile] = OrderedDict()

    def __call__(self, op: bytes, path: bytes, height: object, offset: object = 0, length: object = 0) -> tuple:
        text = path.decode("utf-8", "replace") if isinstance(path, bytes) else str(path)
        try:
            if op == b"open":
                return True, self._open(text, height).size
            if op == b"read":
                file = self._open(text, height)
                return True, file.read(int(offset), min(int(length), MAX_READ))  # type: ignore[call-overload]
        except NotFound:
            return False, f"WeaveDrive: {text}: not found on the gateway"
        except (PyaoError, ValueError, TypeError, OverflowError) as exc:
            return False, f"WeaveDrive: {text}: {str(exc).removeprefix('WeaveDrive: ')}"
        return False, f"WeaveDrive: unknown operation {op!r}"

    def _open(self, path: str, height: object) -> DriveFile:
        file = self.files.get(path)
        if file is None:
            msg = {} if height is None else {"Block-Height": height}
            file = self.drive.open(path, self.process, msg)
            self.files[path] = file
            if len(self.files) > MAX_OPEN:
                self.files.popitem(last=False)[1].close()
        else:
            self.files.move_to_end(path)
        return file
