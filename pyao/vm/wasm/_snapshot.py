"""The byte format of a WASM process snapshot: a compressed memory image plus the messages since.

Layout (all integers big-endian)::

    MAGIC                      b"PYAO-WASM-STATE-3\n"
    u32 header length, header  JSON: {format, module (sha256 of the module bytes), memory (bytes)}
    chunks                     the memory in 1 MiB chunks (the last may be shorter), each
                               u8 mode, u32 length, payload: mode 0 = all zero (no payload),
                               1 = zlib level 1, 2 = raw (a chunk that does not compress)
    u32 device states, states  u32 name length, u32 state length, name (UTF-8), state bytes:
                               each ProcessDevice's per-process state at the base (``_devices``)
    u32 log entries, entries   u32 msg length, u32 env length, msg JSON, env JSON
    sha256                     of every byte before it

Zero chunks cost nothing and incompressible ones are not squeezed in vain (a 16 KiB probe
decides), so a large, sparse memory snapshots fast. Damage is detected by the trailing
sha256 (and zlib's checksum and the lengths); a snapshot of another module or format is
refused (``SnapshotError``). Version 2 snapshots (no device section) are still read.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from dataclasses import dataclass

from pyao.errors import SnapshotError
from pyao.vm.wasm._memory import CHUNK, WASM_PAGE, MemoryImage

MAGIC = b"PYAO-WASM-STATE-3\n"
MAGIC_V2 = b"PYAO-WASM-STATE-2\n"  # the same without device states
MAX_DEVICE_STATES = 64
_PROBE = 16 * 1024
_ZERO, _ZLIB, _RAW = 0, 1, 2


@dataclass(frozen=True)
class Snapshot:
    memory: MemoryImage
    log: tuple[tuple[bytes, bytes], ...]
    devices: tuple[tuple[str, bytes], ...] = ()


def encode_image(
    image: MemoryImage, module_format: str, module_digest: str, devices: dict[str, bytes] | None = None
) -> bytes:
    """Header, memory chunks and device states (everything but the log, which ``with_log`` appends)."""
    parts = [_pack_header({"format": module_format, "module": module_digest, "memory": image.size})]
    held = dict(image.chunks)
    for start in range(0, image.size, CHUNK):
        chunk = held.get(start)
        if chunk is None:
            parts.append(struct.pack(">BI", _ZERO, 0))
            continue
        if len(zlib.compress(chunk[:_PROBE], 1)) > _PROBE * 0.9:
            payload, mode = chunk, _RAW
        else:
            payload, mode = zlib.compress(chunk, 1), _ZLIB
        parts += [struct.pack(">BI", mode, len(payload)), payload]
    states = sorted((devices or {}).items())
    parts.append(struct.pack(">I", len(states)))
    for name, state in states:
        raw = name.encode()
        parts += [struct.pack(">II", len(raw), len(state)), raw, state]
    return b"".join(parts)


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
        version = 3 if data.startswith(MAGIC) else 2 if data.startswith(MAGIC_V2) else 0
        if not version:
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
        image, pos = _read_chunks(data, pos, size)
        devices, pos = _read_devices(data, pos) if version == 3 else ((), pos)
        log, pos = _read_log(data, pos)
        if pos != len(data):
            raise ValueError("trailing bytes")
    except _Mismatch as exc:
        raise SnapshotError(str(exc)) from None
    except (ValueError, KeyError, TypeError, struct.error, zlib.error) as exc:
        raise SnapshotError(f"damaged snapshot: {exc}") from None
    return Snapshot(image, log, devices)


class _Mismatch(Exception):
    pass


def _read_chunks(data: bytes, pos: int, size: int) -> tuple[MemoryImage, int]:
    chunks = []
    for start in range(0, size, CHUNK):
        want = min(CHUNK, size - start)
        mode, length = struct.unpack_from(">BI", data, pos)
        pos += 5
        payload = data[pos : pos + length]
        pos += length
        if len(payload) != length:
            raise ValueError("truncated chunk")
        if mode == _ZERO and length == 0:
            continue
        if mode == _ZLIB:
            d = zlib.decompressobj()
            payload = d.decompress(payload, want + 1)
            if not d.eof or d.unused_data:
                raise ValueError("bad compressed chunk")
        elif mode != _RAW:
            raise ValueError(f"unknown chunk mode {mode}")
        if len(payload) != want:
            raise ValueError("a chunk of the wrong size")
        chunks.append((start, payload))
    return MemoryImage(size, tuple(chunks)), pos


def _read_devices(data: bytes, pos: int) -> tuple[tuple[tuple[str, bytes], ...], int]:
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    if count > MAX_DEVICE_STATES:
        raise ValueError("too many device states")
    states = []
    for _ in range(count):
        nlen, slen = struct.unpack_from(">II", data, pos)
        pos += 8
        if pos + nlen + slen > len(data):
            raise ValueError("truncated device state")
        states.append((data[pos : pos + nlen].decode("utf-8"), data[pos + nlen : pos + nlen + slen]))
        pos += nlen + slen
    return tuple(states), pos


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
