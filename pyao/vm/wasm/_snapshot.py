"""The byte format of a WASM process snapshot: a compressed memory image plus the messages since.

Layout (all integers big-endian)::

    MAGIC                      b"PYAO-WASM-STATE-1\\n"
    u32 header length, header  JSON: {format, module (sha256 of the module bytes),
                               memory (bytes), pages (64 KiB pages present), log (entries)}
    u32 bitmap length, bitmap  one bit per 64 KiB page: 1 = stored, 0 = all zero
    u64 body length, body      zlib (level 1) of the stored pages, in order
    u32 log entries, entries   u32 msg length, u32 env length, msg JSON, env JSON
    sha256                     of every byte before it

Damage is detected by the trailing sha256 (and zlib's checksum, the lengths and
page counts); a snapshot of another module or format is refused (``SnapshotError``).
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

from pyao.errors import SnapshotError
from pyao.vm.wasm._memory import WASM_PAGE

MAGIC = b"PYAO-WASM-STATE-1\n"
_ZERO_PAGE = bytes(WASM_PAGE)


@dataclass(frozen=True)
class Snapshot:
    memory: bytes | bytearray
    log: tuple[tuple[bytes, bytes], ...]


def encode_image(image: bytes, module_format: str, module_digest: str) -> bytes:
    """Everything but the log: header, page bitmap and compressed non-zero pages (``log`` = 0 here;
    ``with_log`` appends the entries and patches the count)."""
    if len(image) % WASM_PAGE:
        raise ValueError("a memory image is a whole number of pages")
    pages = len(image) // WASM_PAGE
    bitmap = bytearray((pages + 7) // 8)
    comp = zlib.compressobj(1)
    chunks = []
    stored = 0
    view = memoryview(image)
    for i in range(pages):
        page = view[i * WASM_PAGE : (i + 1) * WASM_PAGE]
        if page != _ZERO_PAGE:
            bitmap[i // 8] |= 1 << (i % 8)
            chunks.append(comp.compress(page))
            stored += 1
    chunks.append(comp.flush())
    body = b"".join(chunks)
    header = {"format": module_format, "module": module_digest, "memory": len(image), "pages": stored}
    return _pack_header(header) + struct.pack(">I", len(bitmap)) + bytes(bitmap) + struct.pack(">Q", len(body)) + body


def _pack_header(header: dict) -> bytes:
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + struct.pack(">I", len(raw)) + raw


def with_log(image_blob: bytes, log: list[tuple[bytes, bytes]]) -> bytes:
    parts = [image_blob, struct.pack(">I", len(log))]
    for msg_json, env_json in log:
        parts += [struct.pack(">II", len(msg_json), len(env_json)), msg_json, env_json]
    body = b"".join(parts)
    return body + hashlib.sha256(body).digest()


def decode(data: bytes, module_format: str, module_digest: str) -> Snapshot:
    """The memory image and log of ``data``; raises SnapshotError on damage or a mismatch."""
    try:
        if not data.startswith(MAGIC):
            raise ValueError("not a pyao WASM snapshot")
        data, digest = data[:-32], data[-32:]
        if hashlib.sha256(data).digest() != digest:
            raise ValueError("checksum mismatch")
        pos = len(MAGIC)
        (hlen,) = struct.unpack_from(">I", data, pos)
        header = json.loads(data[pos + 4 : pos + 4 + hlen])
        pos += 4 + hlen
        if header.get("format") != module_format or header.get("module") != module_digest:
            raise _Mismatch("the snapshot was made for another module or Module-Format")
        size = int(header["memory"])
        if size < 0 or size % WASM_PAGE:
            raise ValueError("bad memory size")
        (blen,) = struct.unpack_from(">I", data, pos)
        bitmap = data[pos + 4 : pos + 4 + blen]
        pos += 4 + blen
        pages = size // WASM_PAGE
        if len(bitmap) != (pages + 7) // 8:
            raise ValueError("bitmap does not match the memory size")
        (body_len,) = struct.unpack_from(">Q", data, pos)
        body = data[pos + 8 : pos + 8 + body_len]
        pos += 8 + body_len
        stored = _inflate(body, int(header["pages"]))
        image = _expand(bitmap, pages, stored)
        log, pos = _read_log(data, pos)
        if pos != len(data):
            raise ValueError("trailing bytes")
    except _Mismatch as exc:
        raise SnapshotError(str(exc)) from None
    except (ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
        raise SnapshotError(f"damaged snapshot: {exc}") from None
    return Snapshot(image, log)


class _Mismatch(Exception):
    pass


def _inflate(body: bytes, pages: int) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(body, pages * WASM_PAGE + 1)
    if not d.eof or d.unused_data or len(out) != pages * WASM_PAGE:
        raise ValueError("compressed pages are truncated or the wrong size")
    return out


def _expand(bitmap: bytes, pages: int, stored: bytes) -> bytearray:
    image = bytearray(pages * WASM_PAGE)
    src = 0
    for i in range(pages):
        if bitmap[i // 8] >> (i % 8) & 1:
            if src + WASM_PAGE > len(stored):
                raise ValueError("fewer stored pages than the bitmap says")
            image[i * WASM_PAGE : (i + 1) * WASM_PAGE] = stored[src : src + WASM_PAGE]
            src += WASM_PAGE
    if src != len(stored):
        raise ValueError("more stored pages than the bitmap says")
    return image


def _read_log(data: bytes, pos: int) -> tuple[tuple[tuple[bytes, bytes], ...], int]:
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    log = []
    for _ in range(count):
        mlen, elen = struct.unpack_from(">II", data, pos)
        pos += 8
        if pos + mlen + elen > len(data):
            raise ValueError("truncated log")
        entry = (data[pos : pos + mlen], data[pos + mlen : pos + mlen + elen])
        json.loads(entry[0]), json.loads(entry[1])  # both must be JSON (a UnicodeDecodeError is a ValueError)
        log.append(entry)
        pos += mlen + elen
    return tuple(log), pos
