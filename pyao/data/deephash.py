"""Arweave deep hash (SHA-384), the message every ANS-104 signer signs.

blob b  -> sha384( sha384(b"blob" + str(len(b))) + sha384(b) )
list L  -> acc = sha384(b"list" + str(len(L))); for x in L: acc = sha384(acc + deep_hash(x))

``item_signature_data`` is the hot path: the first three members of a data
item's list ("dataitem", "1", signature type) are constant, so their running
accumulator is computed once per signature type.
"""

from __future__ import annotations

from functools import lru_cache
from hashlib import sha384

DeepHashInput = bytes | bytearray | memoryview | list | tuple


@lru_cache(maxsize=4096)
def _blob_tag_digest(length: int) -> bytes:
    return sha384(b"blob%d" % length).digest()


def _blob(chunk: bytes | memoryview) -> bytes:
    return sha384(_blob_tag_digest(len(chunk)) + sha384(chunk).digest()).digest()


def deep_hash(value: DeepHashInput) -> bytes:
    """The 48-byte deep hash of a blob or a (nested) list of blobs."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _blob(value)
    if isinstance(value, (list, tuple)):
        acc = sha384(b"list%d" % len(value)).digest()
        for member in value:
            acc = sha384(acc + deep_hash(member)).digest()
        return acc
    raise TypeError(f"deep_hash takes bytes or lists of bytes, not {type(value).__name__}")


_EMPTY_BLOB = _blob(b"")
_KEY_BLOBS: dict[bytes, bytes] = {}
_KEY_BLOBS_MAX = 8192


def _key_blob(key: bytes) -> bytes:
    """Owners and targets repeat (a user's wallet, a process id): remember their
    blob hashes in a bounded table instead of hashing them on every item."""
    digest = _KEY_BLOBS.get(key)
    if digest is None:
        if len(_KEY_BLOBS) >= _KEY_BLOBS_MAX:
            _KEY_BLOBS.clear()
        digest = _KEY_BLOBS[key] = _blob(key) if key else _EMPTY_BLOB
    return digest


@lru_cache(maxsize=64)
def _item_prefix(signature_type: int) -> bytes:
    acc = sha384(b"list8").digest()
    for member in (b"dataitem", b"1", str(signature_type).encode()):
        acc = sha384(acc + _blob(member)).digest()
    return acc


def item_signature_data(
    signature_type: int,
    owner: bytes,
    target: bytes,
    anchor: bytes,
    tag_bytes: bytes,
    data: bytes | memoryview,
) -> bytes:
    """deep_hash(["dataitem", "1", str(type), owner, target, anchor, tag_bytes, data])."""
    acc = sha384(_item_prefix(signature_type) + _key_blob(owner)).digest()
    acc = sha384(acc + _key_blob(target)).digest()
    acc = sha384(acc + (_blob(anchor) if anchor else _EMPTY_BLOB)).digest()
    acc = sha384(acc + (_blob(tag_bytes) if tag_bytes else _EMPTY_BLOB)).digest()
    return sha384(acc + _blob(data)).digest()
