"""Bounds-checked access to one instance's linear memory (32- or 64-bit).

Contract
--------
* Assumes: a wasmtime ``Memory`` and its ``Store``; the memory may grow
  between calls, so the base pointer and length are read on every access.
* Produces: bytes, integers and C strings read from memory; writes.
* Side effects: none besides the writes asked for. Every address comes from
  the module, so every access is checked and a bad one raises ``MemoryFault``
  (a trap for the module: the message fails, the host never reads out of bounds).
"""

from __future__ import annotations

import ctypes
import hashlib
import struct
from dataclasses import dataclass
from typing import Any

import wasmtime

WASM_PAGE = 65536
#: the unit of sparse images and snapshots: 16 pages
CHUNK = 16 * WASM_PAGE
_ZERO_CHUNK = bytes(CHUNK)


class MemoryFault(Exception):
    """The module passed an address range outside its memory."""


class LinearMemory:
    """The module's memory, with the pointer width of its ABI (4 bytes wasm32, 8 wasm64)."""

    def __init__(self, store: wasmtime.Store, memory: wasmtime.Memory) -> None:
        self.store = store
        self.memory = memory
        self.is_64 = memory.type(store).is_64
        self.ptr_size = 8 if self.is_64 else 4
        self._ptr_fmt = "<Q" if self.is_64 else "<I"
        self._address = ctypes.addressof(memory.data_ptr(store).contents)
        self._known_size = memory.data_len(store)

    # ---------------------------------------------------------------- raw

    def size(self) -> int:
        return self.memory.data_len(self.store)

    def pages(self) -> int:
        return self.memory.size(self.store)

    def _base(self, offset: int, length: int) -> int:
        # The engines never move a memory (Config.memory_may_move = False), so its base address is
        # fixed; only its length grows, and it is re-read when an access falls past the known end.
        if offset < 0 or length < 0:
            raise MemoryFault(f"negative address range {offset}+{length}")
        if offset + length > self._known_size:
            self._known_size = self.memory.data_len(self.store)
            if offset + length > self._known_size:
                raise MemoryFault(f"address range {offset}+{length} is outside the memory ({self._known_size} bytes)")
        return self._address + offset

    def read(self, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        return ctypes.string_at(self._base(offset, length), length)

    def write(self, offset: int, data: bytes | bytearray) -> None:
        if data:
            src = (ctypes.c_char * len(data)).from_buffer(data) if isinstance(data, bytearray) else data
            ctypes.memmove(self._base(offset, len(data)), src, len(data))

    def copy_within(self, dest: int, src: int, length: int) -> None:
        if length:
            ctypes.memmove(self._base(dest, length), self._base(src, length), length)

    def cstring(self, offset: int, limit: int = 1 << 30) -> bytes:
        """The NUL-terminated string at ``offset`` (without the NUL); a missing NUL is a fault."""
        size = self.size()
        chunk = 4096
        end = offset
        while True:
            if end >= size or end - offset > limit:
                raise MemoryFault(f"unterminated string at {offset}")
            n = min(chunk, size - end)
            found = self.read(end, n).find(b"\0")
            if found >= 0:
                return self.read(offset, end - offset + found)
            end += n
            chunk = min(chunk * 4, 1 << 24)

    # ---------------------------------------------------------------- typed

    def u32(self, offset: int) -> int:
        return struct.unpack("<I", self.read(offset, 4))[0]

    def i32(self, offset: int) -> int:
        return struct.unpack("<i", self.read(offset, 4))[0]

    def set_i32(self, offset: int, value: int) -> None:
        self.write(offset, struct.pack("<i", value))

    def set_u64(self, offset: int, value: int) -> None:
        self.write(offset, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def ptr(self, offset: int) -> int:
        return struct.unpack(self._ptr_fmt, self.read(offset, self.ptr_size))[0]

    def set_ptr(self, offset: int, value: int) -> None:
        self.write(offset, struct.pack(self._ptr_fmt, value))

    # ---------------------------------------------------------------- whole image

    def image(self) -> bytes:
        """A copy of the whole memory."""
        return self.read(0, self.size())

    def capture(self) -> MemoryImage:
        """The memory as a sparse image: its non-zero 1 MiB chunks (reading a never-touched page
        does not make it resident, so a large, mostly unused memory stays cheap)."""
        size = self.size()
        chunks = []
        for start in range(0, size, CHUNK):
            data = self.read(start, min(CHUNK, size - start))
            if data != _ZERO_CHUNK[: len(data)]:
                chunks.append((start, data))
        return MemoryImage(size, tuple(chunks))

    def load(self, image: MemoryImage) -> None:
        """Make the memory equal ``image``: grow to its size (a memory never shrinks, so it must be at
        least the current size), zero what the image does not hold, write its chunks."""
        have = self.size()
        if image.size < have or image.size % WASM_PAGE:
            raise MemoryFault(f"an image of {image.size} bytes cannot replace a memory of {have} bytes")
        if image.size > have:
            self.memory.grow(self.store, (image.size - have) // WASM_PAGE)
        held = {start for start, _ in image.chunks}
        for start in range(0, have, CHUNK):  # grown pages are zero already; the first ones may not be
            if start not in held:
                self.write(start, _ZERO_CHUNK[: min(CHUNK, have - start)])
        for start, data in image.chunks:
            self.write(start, data)


@dataclass(frozen=True)
class MemoryImage:
    """A whole linear memory: ``size`` bytes, zero except for ``chunks`` ((offset, bytes) of each
    non-zero 1 MiB chunk, in order)."""

    size: int
    chunks: tuple[tuple[int, bytes], ...]

    def digest(self) -> str:
        """sha256 of the full memory bytes (zeros included), equal to hashing ``LinearMemory.image()``."""
        h = hashlib.sha256()
        pos = 0
        for start, data in self.chunks:
            _zeros_into(h, start - pos)
            h.update(data)
            pos = start + len(data)
        _zeros_into(h, self.size - pos)
        return h.hexdigest()


def _zeros_into(h: Any, n: int) -> None:
    while n > 0:
        step = min(n, CHUNK)
        h.update(_ZERO_CHUNK[:step])
        n -= step
