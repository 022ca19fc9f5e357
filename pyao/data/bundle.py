"""ANS-104 binary bundles: many data items in one body.

Layout: a 32-byte little-endian item count, then per item a 32-byte LE size and
its 32-byte raw id, then the items back to back. A bundle travels as the data
of a data item tagged ``Bundle-Format: binary`` and ``Bundle-Version: 2.0.0``;
the SU stores each schedule entry that way (assignment + message).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from pyao.abc import Signer
from pyao.data._b64 import b64url_encode
from pyao.data.item import DataItem
from pyao.data.tags import Tag, TagsLike, as_tags
from pyao.errors import DataError, ParseError

BUNDLE_TAGS = (Tag("Bundle-Format", "binary"), Tag("Bundle-Version", "2.0.0"))
_ENTRY = 64


@dataclass(frozen=True, slots=True)
class Bundle:
    items: tuple[DataItem, ...]

    @classmethod
    def of(cls, items: Iterable[DataItem]) -> Bundle:
        return cls(tuple(items))

    @property
    def ids(self) -> list[str]:
        return [item.id for item in self.items]

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview, *, verify: bool = False) -> Bundle:
        """Parse a bundle body. Each header id must match its item; with
        ``verify=True`` every item's signature must verify too."""
        raw = bytes(raw)
        if len(raw) < 32:
            raise ParseError("bundle is shorter than its item count")
        count = int.from_bytes(raw[:32], "little")
        offset = 32 + count * _ENTRY
        if offset > len(raw):
            raise ParseError(f"bundle claims {count} items but is only {len(raw)} bytes")
        items = []
        for i in range(count):
            entry = 32 + i * _ENTRY
            size = int.from_bytes(raw[entry : entry + 32], "little")
            header_id = raw[entry + 32 : entry + _ENTRY]
            if size > len(raw) - offset:
                raise ParseError(f"bundle item {i} runs past the end of the bundle")
            item = DataItem.from_bytes(raw[offset : offset + size], verify=verify)
            if hashlib.sha256(item.signature).digest() != header_id:
                raise ParseError(f"bundle item {i} has id {item.id}, header says {b64url_encode(header_id)}")
            items.append(item)
            offset += size
        if offset != len(raw):
            raise ParseError(f"{len(raw) - offset} trailing bytes after the last bundle item")
        return cls(tuple(items))

    def to_bytes(self) -> bytes:
        bodies = [item.to_bytes() for item in self.items]
        header = [len(bodies).to_bytes(32, "little")]
        for item, body in zip(self.items, bodies, strict=False):
            header.append(len(body).to_bytes(32, "little"))
            header.append(hashlib.sha256(item.signature).digest())
        return b"".join(header + bodies)

    def verify(self) -> bool:
        return all(item.verify() for item in self.items)

    def to_item(self, signer: Signer, tags: TagsLike | None = None) -> DataItem:
        """Wrap the bundle as a signed data item with the bundle tags first."""
        return DataItem.create(self.to_bytes(), signer=signer, tags=BUNDLE_TAGS + as_tags(tags))

    @classmethod
    def from_item(cls, item: DataItem, *, verify: bool = False) -> Bundle:
        if not is_bundle(item):
            raise DataError(f"item {item.id} is not tagged as a binary 2.0.0 bundle")
        return cls.from_bytes(item.data, verify=verify)


def is_bundle(item: DataItem) -> bool:
    # Avro writes a tag name's UTF-8 bytes as they are: an item without them in its tag bytes has
    # no such tag (the gateway asks this of every item it ingests; most are not bundles)
    if b"Bundle-Format" not in item.tag_bytes:
        return False
    return item.tag("Bundle-Format") == "binary" and item.tag("Bundle-Version") == "2.0.0"
