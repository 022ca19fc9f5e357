"""The values the gateway's core, stores and HTTP adapter exchange (frozen dataclasses).

Ordering facts every backend keeps:

* Every stored item has a ``seq``: its place in the order the gateway accepted
  items. Ingest and seal are serialised, and a seal assigns *all* pending items
  to the new block, so ordering by ``seq`` is the same as ordering by
  (block height, then arrival), with pending items last (newest). ``seq`` is
  therefore the one sort key for ``HEIGHT_ASC``/``HEIGHT_DESC``, and a cursor
  that holds it never skips or repeats, whatever arrives or is sealed between pages.
* Blocks are numbered from 0 (the genesis block, made when the store is created).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from pyao.data import Tag, b64url_decode, b64url_encode
from pyao.errors import ParseError, RequestError

#: Bytes per stored chunk; a Range read fetches only the chunks it needs.
CHUNK_BYTES = 1024 * 1024
#: GraphQL ``first`` when not given, and the most one page holds (as arweave.net).
DEFAULT_PAGE = 10
MAX_PAGE = 100
#: The most values one list filter (ids, owners, tag values, …) may hold.
MAX_FILTER_VALUES = 1000


@dataclass(frozen=True, slots=True)
class Block:
    height: int
    id: str
    timestamp: int  # seconds
    previous: str  # "" for the genesis block


@dataclass(frozen=True, slots=True)
class ChainInfo:
    height: int
    current: str  # id of the newest block
    pending: int  # items not yet in a block


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One stored data item as the read side shows it."""

    id: str
    signature_type: int
    signature: bytes
    owner: bytes
    owner_address: str
    target: str  # 43-char id or ""
    anchor: bytes  # raw, b"" or 32 bytes
    tags: tuple[Tag, ...]
    data_size: int
    bundled_in: str | None = None
    block: Block | None = None

    @property
    def content_type(self) -> str | None:
        for tag in self.tags:
            if tag.name.lower() == "content-type":
                return tag.value
        return None

    def tag(self, name: str) -> str | None:
        for tag in self.tags:
            if tag.name == name:
                return tag.value
        return None


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item ready to store: its record, and where its data lies in the upload's bytes."""

    record: ItemRecord
    data_offset: int


@dataclass(frozen=True, slots=True)
class Upload:
    """A verified upload: the raw bytes as received, and every item in them (root first)."""

    raw: bytes
    items: tuple[NewItem, ...]

    @property
    def id(self) -> str:
        return self.items[0].record.id


class Sort(Enum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True, slots=True)
class TagFilter:
    name: str
    values: tuple[str, ...]
    negate: bool = False  # op: NEQ


@dataclass(frozen=True, slots=True)
class TransactionQuery:
    """``transactions(...)``: AND across the given filters, OR within each list.

    An empty or absent list is no filter (as arweave.net). A tag filter with no
    values matches items that carry a tag of that name.
    """

    ids: tuple[str, ...] = ()
    owners: tuple[str, ...] = ()
    recipients: tuple[str, ...] = ()
    bundled_in: tuple[str, ...] = ()
    tags: tuple[TagFilter, ...] = ()
    min_height: int | None = None
    max_height: int | None = None
    first: int = DEFAULT_PAGE
    after: str | None = None
    sort: Sort = Sort.DESC


@dataclass(frozen=True, slots=True)
class BlockQuery:
    ids: tuple[str, ...] = ()
    min_height: int | None = None
    max_height: int | None = None
    first: int = DEFAULT_PAGE
    after: str | None = None
    sort: Sort = Sort.DESC


@dataclass(frozen=True, slots=True)
class Page:
    """One page of results: ``(cursor, value)`` pairs and whether more follow."""

    edges: tuple[tuple[str, object], ...] = field(default_factory=tuple)
    has_next: bool = False


# ------------------------------------------------------------------ cursors


def encode_cursor(kind: str, key: int) -> str:
    return b64url_encode(f"{kind}:{key}".encode("ascii"))


def decode_cursor(kind: str, cursor: str) -> int:
    """The integer key inside a cursor this gateway made; RequestError otherwise."""
    try:
        text = b64url_decode(cursor).decode("ascii")
    except (ParseError, UnicodeDecodeError):
        raise RequestError("invalid cursor") from None
    prefix, _, number = text.partition(":")
    if prefix != kind or not number.isdigit() or len(number) > 18:
        raise RequestError("invalid cursor")
    return int(number)
