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
import struct

import wasmtime

WASM_PAGE = 65536


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

    # ---------------------------------------------------------------- raw

    def size(self) -> int:
        return self.memory.data_len(self.store)

    def pages(self) -> int:
        return self.memory.size(self.store)

    def _base(self, offset: int, length: int) -> int:
        size = self.memory.data_len(self.store)
        if offset < 0 or length < 0 or offset + length > size:
            raise MemoryFault(f"address range {offset}+{length} is outside the memory ({size} bytes)")
        return ctypes.addressof(self.memory.data_ptr(self.store).contents) + offset

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

    def load_image(self, image: bytes | bytearray) -> None:
        """Grow to ``len(image)`` (never shrink: the caller gives an image at least as large) and write it."""
        want = -(-len(image) // WASM_PAGE)
        have = self.pages()
        if want > have:
            self.memory.grow(self.store, want - have)
        if self.size() != len(image):
            raise MemoryFault(f"memory is {self.size()} bytes, the image {len(image)}")
        self.write(0, image)
