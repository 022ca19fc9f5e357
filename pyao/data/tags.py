"""ANS-104 tags: the ordered name/value list, Avro-encoded.

Writing follows arbundles: one Avro block (zigzag count, then each name and
value as zigzag length + UTF-8 bytes) and a terminating 0. Reading also takes
what Avro allows: several blocks, and negative block counts followed by a byte
size. The ANS-104 limits are enforced both ways.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from pyao.errors import ParseError, TagError

MAX_TAGS = 128
MAX_NAME_BYTES = 1024
MAX_VALUE_BYTES = 3072
MAX_TAG_BYTES = 4096
_MAX_VARINT_BYTES = 10


class Tag(NamedTuple):
    """One name/value pair. A NamedTuple rather than a dataclass: items are parsed
    on every hot path, and tuple construction is several times cheaper."""

    name: str
    value: str


TagsLike = Iterable[Tag] | Iterable[tuple[str, str]] | Iterable[Mapping[str, str]] | Mapping[str, str]


def as_tags(tags: TagsLike | None) -> tuple[Tag, ...]:
    """Normalise tags given as Tag objects, (name, value) pairs, {"name", "value"} dicts or a dict."""
    if tags is None:
        return ()
    if isinstance(tags, Mapping):
        return tuple(Tag(str(k), str(v)) for k, v in tags.items())
    result = []
    for tag in tags:
        if isinstance(tag, Tag):
            result.append(tag)
        elif isinstance(tag, Mapping):
            result.append(Tag(tag["name"], tag["value"]))
        else:
            name, value = tag
            result.append(Tag(name, value))
    for tag in result:
        if not isinstance(tag.name, str) or not isinstance(tag.value, str):
            raise TagError(f"tag names and values must be str, got {tag!r}")
    return tuple(result)


def _zigzag(n: int, out: bytearray) -> None:
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def check_limits(encoded: list[tuple[bytes, bytes]]) -> None:
    if len(encoded) > MAX_TAGS:
        raise TagError(f"{len(encoded)} tags; at most {MAX_TAGS} are allowed")
    for name, value in encoded:
        if not name:
            raise TagError("a tag name must not be empty")
        if len(name) > MAX_NAME_BYTES:
            raise TagError(f"tag name of {len(name)} bytes; at most {MAX_NAME_BYTES}")
        if len(value) > MAX_VALUE_BYTES:
            raise TagError(f"tag value of {len(value)} bytes; at most {MAX_VALUE_BYTES}")


def encode_tags(tags: Iterable[Tag]) -> bytes:
    """Avro bytes for ``tags``; b"" for no tags (as arbundles writes it)."""
    encoded = [(t.name.encode("utf-8"), t.value.encode("utf-8")) for t in tags]
    if not encoded:
        return b""
    check_limits(encoded)
    out = bytearray()
    _zigzag(len(encoded), out)
    for name, value in encoded:
        _zigzag(len(name), out)
        out += name
        _zigzag(len(value), out)
        out += value
    out.append(0)
    if len(out) > MAX_TAG_BYTES:
        raise TagError(f"tags encode to {len(out)} bytes; at most {MAX_TAG_BYTES}")
    return bytes(out)


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """One zigzag varint; at most 10 bytes, so no hostile input builds a huge int."""
    shift = 0
    n = 0
    end = len(buf)
    for _ in range(_MAX_VARINT_BYTES):
        if pos >= end:
            raise ParseError("tag bytes end inside a number")
        byte = buf[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
    raise ParseError("tag bytes hold an over-long number")


def _read_length(buf: bytes, pos: int, limit: int, what: str) -> tuple[int, int]:
    length, pos = _read_long(buf, pos)
    if length < 0:
        raise ParseError(f"negative {what} length in tag bytes")
    if length > limit:
        raise TagError(f"tag {what} of {length} bytes; at most {limit}")
    return length, pos


def decode_tags(buf: bytes) -> tuple[Tag, ...]:
    """Decode Avro tag bytes, enforcing the ANS-104 limits. b"" means no tags."""
    if not buf:
        return ()
    if len(buf) > MAX_TAG_BYTES:
        raise TagError(f"{len(buf)} tag bytes; at most {MAX_TAG_BYTES}")
    try:
        tags, pos = _decode_blocks(buf)
    except IndexError:  # a length byte read past the end
        raise ParseError("tag bytes end inside a tag") from None
    if pos != len(buf):
        raise ParseError(f"{len(buf) - pos} trailing bytes after the tag block")
    return tuple(tags)


def _decode_blocks(buf: bytes) -> tuple[list[Tag], int]:
    tags: list[Tag] = []
    end_of_buf = len(buf)
    pos = 0
    while True:
        count, pos = _read_long(buf, pos)
        if count == 0:
            return tags, pos
        if count < 0:  # Avro: negative count, then the block's size in bytes
            count = -count
            size, pos = _read_long(buf, pos)
            if size < 0:
                raise ParseError("negative block size in tag bytes")
        if len(tags) + count > MAX_TAGS:
            raise TagError(f"more than {MAX_TAGS} tags")
        for _ in range(count):
            # Hot loop, inlined: a length under 64 is one even varint byte.
            byte = buf[pos]
            if byte < 0x80 and not byte & 1:
                length, pos = byte >> 1, pos + 1
            else:
                length, pos = _read_length(buf, pos, MAX_NAME_BYTES, "name")
            if length == 0:
                raise TagError("a tag name must not be empty")
            end = pos + length
            if end > end_of_buf:
                raise ParseError("tag bytes end inside a name")
            # Like arbundles (Buffer#utf8Slice): invalid UTF-8 reads as U+FFFD.
            name = buf[pos:end].decode("utf-8", "replace")
            byte = buf[end]
            if byte < 0x80 and not byte & 1:
                length, pos = byte >> 1, end + 1
            else:
                length, pos = _read_length(buf, end, MAX_VALUE_BYTES, "value")
            end = pos + length
            if end > end_of_buf:
                raise ParseError("tag bytes end inside a value")
            tags.append(Tag(name, buf[pos:end].decode("utf-8", "replace")))
            pos = end
