"""ANS-104 data items: parse, build, sign, verify, serialise.

Binary layout (all integers little-endian)::

    u16 signature type | signature | owner | u8 target? [+32] | u8 anchor? [+32]
    | u64 tag count | u64 tag byte length | Avro tags | data

The signature covers ``item_signature_data`` (see ``deephash``), with the tag
bytes exactly as they appear on the wire, so an item keeps its raw tag bytes
and re-serialises byte for byte even when another writer encoded them
differently (several Avro blocks, negative counts).

In one process (``pyao up``) the same item is parsed by the MU, the SU, the gateway
and the SU's schedule renderer in turn; ``from_bytes`` remembers recent parses by
their exact bytes (bounded), and an item computes its id and checks its signature
at most once (both are pure functions of its immutable fields).
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from pyao.abc import Signer
from pyao.data._b64 import b64url_encode, decode_id
from pyao.data.deephash import item_signature_data
from pyao.data.signing import SCHEMES, SELF_VERIFYING_SIGNERS, check_signature, scheme_for
from pyao.data.tags import MAX_TAG_BYTES, Tag, TagsLike, as_tags, decode_tags, encode_tags
from pyao.errors import ParseError, SignatureError, TagError

_U16 = struct.Struct("<H")
_U64_PAIR = struct.Struct("<QQ")


@dataclass(frozen=True, slots=True)
class DataItem:
    """A signed ANS-104 data item. Build with ``create`` or ``from_bytes``.

    ``target`` and ``anchor`` are raw bytes: empty when absent, else 32 bytes.
    ``tag_bytes`` is the Avro encoding of ``tags`` exactly as signed.
    """

    signature_type: int
    signature: bytes
    owner: bytes
    target: bytes
    anchor: bytes
    tags: tuple[Tag, ...]
    tag_bytes: bytes
    data: bytes
    # computed at most once, on first use (not part of the value: no compare, no init)
    _id: str = field(default="", init=False, compare=False, repr=False)
    _verified: bool = field(default=False, init=False, compare=False, repr=False)

    # ------------------------------------------------------------ building

    @classmethod
    def create(
        cls,
        data: bytes | str = b"",
        *,
        signer: Signer,
        tags: TagsLike | None = None,
        target: str | bytes = b"",
        anchor: str | bytes = b"",
    ) -> DataItem:
        """Build and sign an item. ``target`` is an id (43 chars) or 32 raw bytes;
        ``anchor`` is 32 bytes (a 32-character string is encoded as UTF-8)."""
        tags = as_tags(tags)
        unsigned = cls(
            signature_type=signer.signature_type,
            signature=b"",
            owner=signer.owner,
            target=_as_target(target),
            anchor=_as_anchor(anchor),
            tags=tags,
            tag_bytes=encode_tags(tags),
            data=data.encode("utf-8") if isinstance(data, str) else bytes(data),
        )
        scheme = scheme_for(signer.signature_type)
        if len(unsigned.owner) != scheme.owner_length:
            raise SignatureError(f"signer's owner is {len(unsigned.owner)} bytes; type needs {scheme.owner_length}")
        message = unsigned.signature_data()
        item = replace(unsigned, signature=check_signature(signer, message, signer.sign(message)))
        if type(signer) in SELF_VERIFYING_SIGNERS and len(item.data) <= _PARSED.max_item:
            remember_signed(item.to_bytes(), item, message)
        return item

    # ------------------------------------------------------------ wire form

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview, *, verify: bool = False) -> DataItem:
        """Parse an item. Malformed bytes raise ``ParseError``/``TagError``; with
        ``verify=True`` a bad signature raises ``SignatureError``."""
        raw = bytes(raw)
        item = _PARSED.get(raw)
        if item is None:
            item = _parse(raw)
            _PARSED.add(raw, item)
        if verify and not item.verify():
            raise SignatureError(f"data item {item.id} has an invalid signature")
        return item

    def to_bytes(self) -> bytes:
        parts = [_U16.pack(self.signature_type), self.signature, self.owner]
        parts.append(b"\x01" + self.target if self.target else b"\x00")
        parts.append(b"\x01" + self.anchor if self.anchor else b"\x00")
        parts.append(_U64_PAIR.pack(len(self.tags), len(self.tag_bytes)))
        parts.append(self.tag_bytes)
        parts.append(self.data)
        return b"".join(parts)

    __bytes__ = to_bytes

    # ------------------------------------------------------------ signatures

    def signature_data(self) -> bytes:
        """The 48-byte deep hash the signature covers."""
        return item_signature_data(self.signature_type, self.owner, self.target, self.anchor, self.tag_bytes, self.data)

    def verify(self) -> bool:
        """True only if the signature is valid for this item's owner and contents."""
        if self._verified:
            return True
        scheme = scheme_for(self.signature_type)
        if len(self.signature) != scheme.signature_length or len(self.owner) != scheme.owner_length:
            return False
        message = self.signature_data()
        key = _verified_key(self, message)
        valid = _VERIFIED.seen(key) or scheme.verify(self.owner, message, self.signature)
        if valid:
            _VERIFIED.add(key)
            object.__setattr__(self, "_verified", True)
        return valid

    @property
    def known_valid(self) -> bool:
        """True when a check of this item's signature already passed (or it was signed in this
        process by a self-verifying signer): ``verify()`` will answer True at once."""
        return self._verified

    # ------------------------------------------------------------ views

    @property
    def id(self) -> str:
        """base64url(sha256(signature))."""
        if not self._id:
            object.__setattr__(self, "_id", b64url_encode(hashlib.sha256(self.signature).digest()))
        return self._id

    @property
    def owner_address(self) -> str:
        """The address ao shows as ``Owner``: base64url(sha256(owner)), or EIP-55 for Ethereum keys."""
        return scheme_for(self.signature_type).address(self.owner)

    @property
    def target_id(self) -> str:
        """The target as a 43-character id, or "" when there is none."""
        return b64url_encode(self.target) if self.target else ""

    @property
    def anchor_text(self) -> str:
        """The anchor as the SU and CU show it: UTF-8 text ("" when absent)."""
        return self.anchor.decode("utf-8", "replace")

    def tag(self, name: str, default: str | None = None) -> str | None:
        """The value of the first tag called ``name``."""
        for t in self.tags:
            if t.name == name:
                return t.value
        return default

    def tag_values(self, name: str) -> list[str]:
        return [t.value for t in self.tags if t.name == name]

    def __repr__(self) -> str:
        return f"DataItem(id={self.id!r}, type={self.signature_type}, tags={len(self.tags)}, data={len(self.data)}B)"


class _VerifiedSignatures:
    """Signature checks that passed, remembered (bounded, oldest out first).

    In ``pyao up`` one item is checked by the MU, the SU and the gateway in turn, and
    each check is the same pure function of (type, owner, signed message, signature):
    the key holds all four, so a hit is exactly the answer a new check would give.
    Failures are not remembered. Thread-safe (units check on several threads)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[bytes, None] = OrderedDict()

    def seen(self, key: bytes) -> bool:
        return key in self._keys

    def add(self, key: bytes) -> None:
        # No lock: each OrderedDict call below is one atomic step under the GIL (bytes keys run no
        # Python code), and a race at worst evicts one key early. A lock here was contended by the
        # SU's verifier and slotter threads, each add waiting out the other's GIL slice.
        keys = self._keys
        keys[key] = None
        if len(keys) > self.capacity:
            with contextlib.suppress(KeyError):  # another thread emptied it first (tiny capacities)
                keys.popitem(last=False)

    def clear(self) -> None:
        self._keys.clear()


_VERIFIED = _VerifiedSignatures(65_536)


def _verified_key(item: DataItem, message: bytes) -> bytes:
    return b"%d:%b%b%b" % (item.signature_type, item.owner, item.signature, message)


class _ParsedItems:
    """Items parsed lately, keyed by their exact bytes (bounded by count and total size, oldest
    out first; items larger than ``max_item`` are not kept).

    Parsing is a pure function of the bytes and an item is immutable, so a hit is exactly the
    item a new parse would give; only successful parses are kept. Thread-safe."""

    def __init__(self, capacity: int, max_item: int, max_bytes: int) -> None:
        self.capacity, self.max_item, self.max_bytes = capacity, max_item, max_bytes
        self._items: OrderedDict[bytes, DataItem] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, raw: bytes) -> DataItem | None:
        return self._items.get(raw) if len(raw) <= self.max_item else None

    def add(self, raw: bytes, item: DataItem) -> None:
        if len(raw) > self.max_item:
            return
        with self._lock:
            if raw in self._items:
                return
            self._items[raw] = item
            self._size += len(raw)
            while len(self._items) > self.capacity or self._size > self.max_bytes:
                oldest, _ = self._items.popitem(last=False)
                self._size -= len(oldest)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


_PARSED = _ParsedItems(8192, 64 * 1024, 16 * 1024 * 1024)


def forget_remembered() -> None:
    """Empty the memos of parsed items and passed signature checks (a benchmark of parsing and
    checking must not measure their hits)."""
    _PARSED.clear()
    _VERIFIED.clear()


def _as_target(target: str | bytes) -> bytes:
    if isinstance(target, str):
        return decode_id(target) if target else b""
    if target and len(target) != 32:
        raise ParseError("a target is 32 bytes")
    return bytes(target)


def _as_anchor(anchor: str | bytes) -> bytes:
    raw = anchor.encode("utf-8") if isinstance(anchor, str) else bytes(anchor)
    if raw and len(raw) != 32:
        raise ParseError(f"an anchor is exactly 32 bytes, got {len(raw)}")
    return raw


def _flagged(raw: bytes, pos: int, what: str) -> tuple[bytes, int]:
    """A presence byte (0 or 1) and, when 1, the 32 bytes that follow."""
    flag = raw[pos]
    if flag == 0:
        return b"", pos + 1
    if flag != 1:
        raise ParseError(f"{what} flag is {flag}; it must be 0 or 1")
    if pos + 33 > len(raw):
        raise ParseError(f"item ends inside its {what}")
    return raw[pos + 1 : pos + 33], pos + 33


def _parse(raw: bytes) -> DataItem:
    if len(raw) < 2:
        raise ParseError("item is shorter than its signature type")
    signature_type = raw[0] | raw[1] << 8
    scheme = SCHEMES.get(signature_type) or scheme_for(signature_type)  # scheme_for raises the typed error
    owner_at = 2 + scheme.signature_length
    owner_end = owner_at + scheme.owner_length
    # +2: both presence flags must exist, even when neither target nor anchor does.
    if owner_end + 2 > len(raw):
        raise ParseError("item ends inside its signature, owner or presence flags")
    target, pos = _flagged(raw, owner_end, "target")
    if pos >= len(raw):
        raise ParseError("item ends before its anchor flag")
    anchor, pos = _flagged(raw, pos, "anchor")
    if pos + 16 > len(raw):
        raise ParseError("item ends inside its tag header")
    tag_count, tag_length = _U64_PAIR.unpack_from(raw, pos)
    pos += 16
    if tag_length > MAX_TAG_BYTES:
        raise TagError(f"{tag_length} tag bytes; at most {MAX_TAG_BYTES}")
    data_at = pos + tag_length
    if data_at > len(raw):
        raise ParseError("item ends inside its tags")
    tag_bytes = raw[pos:data_at]
    tags = decode_tags(tag_bytes)
    if len(tags) != tag_count:
        raise ParseError(f"item says {tag_count} tags but holds {len(tags)}")
    return DataItem(
        signature_type, raw[2:owner_at], raw[owner_at:owner_end], target, anchor, tags, tag_bytes, raw[data_at:]
    )


def remember_signed(raw: bytes, item: DataItem, message: bytes) -> None:
    """Remember ``item`` (serialised as ``raw``, its deep hash ``message``) as parsed and verified.

    Only for an item this process has just signed with a signer in ``SELF_VERIFYING_SIGNERS``:
    its signature verifies by construction, so the next ``from_bytes(raw, verify=True)`` (the
    SU taking the MU's forwarded item, the gateway ingesting the SU's assignments) neither
    parses nor checks it again."""
    object.__setattr__(item, "_verified", True)
    _VERIFIED.add(_verified_key(item, message))
    _PARSED.add(raw, item)
