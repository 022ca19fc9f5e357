"""A file as a signed ANS-104 data item, without holding the file in memory.

Contract:
- assumes: the file does not change between ``sign_file`` and the upload (its size is checked
  again while streaming; a change raises ``DataError`` and the upload is abandoned).
- produces: ``FileItem`` (the item's header bytes, id and total length); ``file_chunks`` yields
  the header and then the file in ``CHUNK``-byte pieces, exactly the bytes of
  ``DataItem.create(file_bytes, ...).to_bytes()``.
- side effects: reads the file twice (once to hash it, once to send it); memory use is one chunk.

The signature covers the deep hash of the item's fields, whose last member is the data; a blob's
deep hash only needs the SHA-384 of its bytes and its length, so the file is hashed in chunks.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

from pyao.abc import Signer
from pyao.data import DataItem
from pyao.data.deephash import deep_hash
from pyao.data.signing import check_signature
from pyao.data.tags import TagsLike
from pyao.errors import DataError

CHUNK = 1 << 20


@dataclass(frozen=True)
class FileItem:
    path: Path
    size: int
    #: every byte of the item before its data (signature, owner, target, anchor, tags)
    header: bytes
    id: str

    @property
    def length(self) -> int:
        return len(self.header) + self.size


def _file_sha384(path: Path) -> tuple[bytes, int]:
    digest, size = hashlib.sha384(), 0
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.digest(), size


def sign_file(path: Path, signer: Signer, tags: TagsLike | None = None, *, target: str | bytes = b"") -> FileItem:
    """Sign ``path``'s bytes as the data of an item carrying ``tags`` (and ``target``)."""
    path = Path(path)
    data_digest, size = _file_sha384(path)
    # the same item with no data: its fields, encoded exactly as DataItem encodes them
    shell = DataItem.create(b"", signer=signer, tags=tags, target=target)
    members = [
        b"dataitem",
        b"1",
        str(shell.signature_type).encode(),
        shell.owner,
        shell.target,
        shell.anchor,
        shell.tag_bytes,
    ]
    acc = hashlib.sha384(b"list%d" % (len(members) + 1)).digest()
    for member in members:
        acc = hashlib.sha384(acc + deep_hash(member)).digest()
    data_blob = hashlib.sha384(hashlib.sha384(b"blob%d" % size).digest() + data_digest).digest()
    message = hashlib.sha384(acc + data_blob).digest()
    signed = replace(shell, signature=check_signature(signer, message, signer.sign(message)))
    return FileItem(path=path, size=size, header=signed.to_bytes(), id=signed.id)


async def file_chunks(item: FileItem, progress: Callable[[int, int], None] | None = None) -> AsyncIterator[bytes]:
    """The item's bytes: header, then the file; ``progress(sent, total)`` after each piece."""
    sent = len(item.header)
    yield item.header
    with open(item.path, "rb") as file:
        while chunk := file.read(CHUNK):
            sent += len(chunk)
            if sent > item.length:
                raise DataError(f"{item.path} grew while it was being uploaded")
            yield chunk
            if progress is not None:
                progress(sent, item.length)
    if sent != item.length:
        raise DataError(f"{item.path} shrank while it was being uploaded")
    if progress is not None and item.size == 0:
        progress(sent, item.length)
