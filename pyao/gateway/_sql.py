"""The SQL half every relational backend shares: schema, ingest, seal, queries.

A backend (``_sqlite``, ``_postgres``) supplies connections and its dialect's
few differences; the SQL here uses ``?`` placeholders (rewritten for psycopg).
Calls block, so the async ``GatewayStore`` methods run them in worker threads.

Tables: ``gw_items`` (one row per item; ``seq`` = arrival order; ``height`` NULL
while pending; ``blob``/``data_offset`` locate the data inside the chunks of
the upload that brought it), ``gw_tags`` (name/value as UTF-8 bytes, so any
tag, NUL included, is stored and matched exactly), ``gw_chunks`` (each upload's
raw bytes in ``CHUNK_BYTES`` pieces), ``gw_blocks``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anyio.to_thread

from pyao._sql import insert_rows
from pyao.abc import GatewayStore
from pyao.data import Tag
from pyao.errors import NotFound, RequestError
from pyao.gateway._core import block_id
from pyao.gateway._model import (
    CHUNK_BYTES,
    MAX_FILTER_VALUES,
    MAX_PAGE,
    Block,
    BlockQuery,
    ChainInfo,
    ItemRecord,
    NewItem,
    Page,
    Sort,
    TransactionQuery,
    Upload,
    decode_cursor,
    encode_cursor,
)

T = TypeVar("T")

#: Chunks fetched per worker-thread call while streaming data.
_CHUNKS_PER_READ = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS gw_items (
    seq {serial} PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    signature_type INTEGER NOT NULL,
    signature {blob} NOT NULL,
    owner {blob} NOT NULL,
    owner_address TEXT NOT NULL,
    target TEXT NOT NULL,
    anchor {blob} NOT NULL,
    data_size BIGINT NOT NULL,
    bundled_in TEXT,
    blob TEXT NOT NULL,
    data_offset BIGINT NOT NULL,
    height BIGINT
);
CREATE INDEX IF NOT EXISTS gw_items_owner ON gw_items (owner_address, seq);
CREATE INDEX IF NOT EXISTS gw_items_target ON gw_items (target, seq);
CREATE INDEX IF NOT EXISTS gw_items_bundled ON gw_items (bundled_in, seq);
CREATE INDEX IF NOT EXISTS gw_items_height ON gw_items (height, seq);
CREATE TABLE IF NOT EXISTS gw_tags (
    item_seq BIGINT NOT NULL,
    idx INTEGER NOT NULL,
    name {blob} NOT NULL,
    value {blob} NOT NULL,
    PRIMARY KEY (item_seq, idx)
);
CREATE INDEX IF NOT EXISTS gw_tags_name_value ON gw_tags (name, value, item_seq);
CREATE TABLE IF NOT EXISTS gw_chunks (
    blob TEXT NOT NULL,
    n INTEGER NOT NULL,
    bytes {blob} NOT NULL,
    PRIMARY KEY (blob, n)
);
CREATE TABLE IF NOT EXISTS gw_blocks (
    height BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    timestamp BIGINT NOT NULL,
    previous TEXT NOT NULL
)
"""

_ITEM_COLUMNS = (
    "i.seq, i.id, i.signature_type, i.signature, i.owner, i.owner_address, i.target, i.anchor, "
    "i.data_size, i.bundled_in, i.height, b.id, b.timestamp, b.previous"
)
_ITEM_FROM = "gw_items i LEFT JOIN gw_blocks b ON b.height = i.height"
_INSERT_ITEM = (
    "INSERT INTO gw_items (seq, id, signature_type, signature, owner, owner_address, target, anchor, data_size, "
    "bundled_in, blob, data_offset) VALUES"
)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class SqlStore(GatewayStore):
    """A relational ``GatewayStore``; subclasses provide ``_connection`` and ``_write``."""

    placeholder = "?"

    # ---------------------------------------------------------------- backend hooks

    def _connection(self) -> contextlib.AbstractContextManager[Any]:
        """A connection for reads (autocommit; one statement at a time)."""
        raise NotImplementedError

    def _write(self) -> contextlib.AbstractContextManager[Any]:
        """A connection inside one transaction that holds the store's write lock."""
        raise NotImplementedError

    def _sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)

    def _run(self, conn: Any, sql: str, params: tuple | list = ()) -> Any:
        return conn.execute(self._sql(sql), params)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args)

    # ---------------------------------------------------------------- schema

    def _init_schema(self, conn: Any, serial: str, blob: str) -> None:
        for statement in SCHEMA.format(serial=serial, blob=blob).split(";"):
            self._run(conn, statement)
        if self._run(conn, "SELECT 1 FROM gw_blocks WHERE height = 0").fetchone() is None:
            now = int(time.time())
            self._run(
                conn,
                "INSERT INTO gw_blocks (height, id, timestamp, previous) VALUES (0, ?, ?, '') ON CONFLICT DO NOTHING",
                (block_id("", 0, now, []), now),
            )

    # ---------------------------------------------------------------- writes

    async def put(self, upload: Upload) -> bool:
        return await self._call(self._put, upload)

    def _put(self, upload: Upload) -> bool:
        with self._write() as conn:
            ids = [new.record.id for new in upload.items]
            known = self._existing(conn, ids)
            if upload.id in known:
                return False
            self._insert_items(conn, [new for new in upload.items if new.record.id not in known], upload.id)
            raw = upload.raw
            spans = enumerate(range(0, len(raw), CHUNK_BYTES))
            chunks = [(upload.id, n, raw[at : at + CHUNK_BYTES]) for n, at in spans]
            self._executemany(conn, "INSERT INTO gw_chunks (blob, n, bytes) VALUES (?, ?, ?)", chunks)
            return True

    def _existing(self, conn: Any, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for at in range(0, len(ids), 500):
            part = ids[at : at + 500]
            marks = ",".join("?" * len(part))
            rows = self._run(conn, f"SELECT id FROM gw_items WHERE id IN ({marks})", part).fetchall()
            found.update(row[0] for row in rows)
        return found

    def _next_seqs(self, conn: Any, count: int) -> list[int]:
        """The next ``count`` item seqs, ascending (called inside the write transaction, which
        holds the store's write lock: nobody else takes one meanwhile)."""
        raise NotImplementedError

    def _insert_items(self, conn: Any, items: list[NewItem], blob: str) -> None:
        """The items' rows and all their tag rows, in a few multi-row statements (an SU bundle
        holds two items and ~14 tags per slot; see ``insert_rows``)."""
        if not items:
            return
        seqs = self._next_seqs(conn, len(items))
        rows, tags = [], []
        for seq, new in zip(seqs, items, strict=True):
            r = new.record
            rows.append(
                (seq, r.id, r.signature_type, r.signature, r.owner, r.owner_address, r.target, r.anchor,
                 r.data_size, r.bundled_in, blob, new.data_offset)
            )  # fmt: skip
            tags += [
                (seq, i, t.name.encode("utf-8", "surrogatepass"), t.value.encode("utf-8", "surrogatepass"))
                for i, t in enumerate(r.tags)
            ]
        insert_rows(conn, _INSERT_ITEM, 12, rows, self.placeholder)
        insert_rows(conn, "INSERT INTO gw_tags (item_seq, idx, name, value) VALUES", 4, tags, self.placeholder)

    def _executemany(self, conn: Any, sql: str, rows: list[tuple]) -> None:
        if rows:
            conn.cursor().executemany(self._sql(sql), rows)

    async def seal(self, timestamp: int | None = None) -> Block:
        return await self._call(self._seal, timestamp)

    def _seal(self, timestamp: int | None) -> Block:
        with self._write() as conn:
            tip = self._tip(conn)
            ts = max(tip.timestamp, int(time.time()) if timestamp is None else int(timestamp))
            ids = [r[0] for r in self._run(conn, "SELECT id FROM gw_items WHERE height IS NULL ORDER BY seq")]
            block = Block(tip.height + 1, block_id(tip.id, tip.height + 1, ts, ids), ts, tip.id)
            self._run(
                conn,
                "INSERT INTO gw_blocks (height, id, timestamp, previous) VALUES (?, ?, ?, ?)",
                (block.height, block.id, block.timestamp, block.previous),
            )
            self._run(conn, "UPDATE gw_items SET height = ? WHERE height IS NULL", (block.height,))
            return block

    def _tip(self, conn: Any) -> Block:
        row = self._run(conn, "SELECT height, id, timestamp, previous FROM gw_blocks ORDER BY height DESC LIMIT 1")
        return Block(*row.fetchone())

    # ---------------------------------------------------------------- reads

    async def info(self) -> ChainInfo:
        return await self._call(self._info)

    def _info(self) -> ChainInfo:
        with self._connection() as conn:
            tip = self._tip(conn)
            pending = self._run(conn, "SELECT COUNT(*) FROM gw_items WHERE height IS NULL").fetchone()[0]
        return ChainInfo(tip.height, tip.id, int(pending))

    async def item(self, item_id: str) -> ItemRecord | None:
        return await self._call(self._item, item_id)

    def _item(self, item_id: str) -> ItemRecord | None:
        with self._connection() as conn:
            row = self._run(conn, f"SELECT {_ITEM_COLUMNS} FROM {_ITEM_FROM} WHERE i.id = ?", (item_id,)).fetchone()
            if row is None:
                return None
            return self._records(conn, [row])[0]

    def _records(self, conn: Any, rows: list[tuple]) -> list[ItemRecord]:
        tags: dict[int, list[Tag]] = {row[0]: [] for row in rows}
        if rows:
            marks = ",".join("?" * len(rows))
            sql = f"SELECT item_seq, name, value FROM gw_tags WHERE item_seq IN ({marks}) ORDER BY item_seq, idx"
            for seq, name, value in self._run(conn, sql, [row[0] for row in rows]):
                tags[seq].append(Tag(bytes(name).decode("utf-8", "replace"), bytes(value).decode("utf-8", "replace")))
        return [_record(row, tuple(tags[row[0]])) for row in rows]

    async def read(self, item_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        where = await self._call(self._locate, item_id)
        if where is None:
            raise NotFound(f"no item {item_id}")
        blob, offset, size = where
        if start < 0 or end >= size or start > end:
            raise RequestError(f"bytes {start}..{end} are outside the data ({size} bytes)")
        first, last = offset + start, offset + end
        n = first // CHUNK_BYTES
        while n <= last // CHUNK_BYTES:
            upto = min(n + _CHUNKS_PER_READ - 1, last // CHUNK_BYTES)
            for k, chunk in await self._call(self._chunks, blob, n, upto):
                base = k * CHUNK_BYTES
                piece = bytes(chunk)[max(first - base, 0) : last - base + 1]
                if piece:
                    yield piece
            n = upto + 1

    def _locate(self, item_id: str) -> tuple[str, int, int] | None:
        with self._connection() as conn:
            row = self._run(conn, "SELECT blob, data_offset, data_size FROM gw_items WHERE id = ?", (item_id,))
            return row.fetchone()

    def _chunks(self, blob: str, first: int, last: int) -> list[tuple[int, bytes]]:
        with self._connection() as conn:
            sql = "SELECT n, bytes FROM gw_chunks WHERE blob = ? AND n >= ? AND n <= ? ORDER BY n"
            return list(self._run(conn, sql, (blob, first, last)))

    async def transactions(self, query: TransactionQuery) -> Page:
        return await self._call(self._transactions, query)

    def _transactions(self, query: TransactionQuery) -> Page:
        where, params = _transaction_filters(query)
        ascending = query.sort is Sort.ASC
        if query.after is not None:
            where.append("i.seq > ?" if ascending else "i.seq < ?")
            params.append(decode_cursor("tx", query.after))
        first = _page_size(query.first)
        sql = f"SELECT {_ITEM_COLUMNS} FROM {_ITEM_FROM}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY i.seq {'ASC' if ascending else 'DESC'} LIMIT {first + 1}"
        with self._connection() as conn:
            rows = list(self._run(conn, sql, params))
            records = self._records(conn, rows[:first])
        edges = tuple((encode_cursor("tx", row[0]), rec) for row, rec in zip(rows, records, strict=False))
        return Page(edges, len(rows) > first)

    async def blocks(self, query: BlockQuery) -> Page:
        return await self._call(self._blocks, query)

    def _blocks(self, query: BlockQuery) -> Page:
        where: list[str] = []
        params: list[Any] = []
        if query.ids:
            _add_in(where, params, "id", query.ids)
        _add_range(where, params, "height", query.min_height, query.max_height)
        ascending = query.sort is Sort.ASC
        if query.after is not None:
            where.append("height > ?" if ascending else "height < ?")
            params.append(decode_cursor("block", query.after))
        first = _page_size(query.first)
        sql = "SELECT height, id, timestamp, previous FROM gw_blocks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY height {'ASC' if ascending else 'DESC'} LIMIT {first + 1}"
        with self._connection() as conn:
            rows = list(self._run(conn, sql, params))
        edges = tuple((encode_cursor("block", row[0]), Block(*row)) for row in rows[:first])
        return Page(edges, len(rows) > first)

    async def block(self, height: int) -> tuple[Block, list[str]] | None:
        return await self._call(self._block, height)

    def _block(self, height: int) -> tuple[Block, list[str]] | None:
        if not 0 <= height < 2**62:
            return None
        with self._connection() as conn:
            sql = "SELECT height, id, timestamp, previous FROM gw_blocks WHERE height = ?"
            row = self._run(conn, sql, (height,)).fetchone()
            if row is None:
                return None
            txs = [r[0] for r in self._run(conn, "SELECT id FROM gw_items WHERE height = ? ORDER BY seq", (height,))]
        return Block(*row), txs

    def iter_ids(self) -> Iterator[str]:  # pragma: no cover - debugging aid
        with self._connection() as conn:
            yield from (row[0] for row in self._run(conn, "SELECT id FROM gw_items ORDER BY seq"))


def _record(row: tuple, tags: tuple[Tag, ...]) -> ItemRecord:
    (_, item_id, sig_type, signature, owner, address, target, anchor, size, bundled_in, height, bid, bts, bprev) = row
    block = None if height is None else Block(int(height), bid, int(bts), bprev)
    return ItemRecord(
        item_id, sig_type, bytes(signature), bytes(owner), address, target, bytes(anchor), tags, int(size),
        bundled_in, block,
    )  # fmt: skip


def _page_size(first: int) -> int:
    if first < 0:
        raise RequestError("first must not be negative")
    return min(first, MAX_PAGE)


def _check_values(values: tuple[str, ...], what: str) -> None:
    if len(values) > MAX_FILTER_VALUES:
        raise RequestError(f"at most {MAX_FILTER_VALUES} {what} per filter")


def _add_in(where: list[str], params: list[Any], column: str, values: tuple[str, ...]) -> None:
    """``column IN (values)``; values no id or address can equal (non-ASCII, NUL) are dropped."""
    _check_values(values, column)
    values = tuple(v for v in values if v.isascii() and "\x00" not in v)
    if not values:
        where.append("1 = 0")
        return
    where.append(f"{column} IN ({','.join('?' * len(values))})")
    params.extend(values)


def _add_range(where: list[str], params: list[Any], column: str, low: int | None, high: int | None) -> None:
    if low is not None:
        where.append(f"{column} >= ?")
        params.append(max(low, -(2**62)))
    if high is not None:
        where.append(f"{column} <= ?")
        params.append(min(high, 2**62))


def _transaction_filters(query: TransactionQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, values in (
        ("i.id", query.ids),
        ("i.owner_address", query.owners),
        ("i.target", query.recipients),
        ("i.bundled_in", query.bundled_in),
    ):
        if values:
            _add_in(where, params, column, values)
    if len(query.tags) > 32:
        raise RequestError("at most 32 tag filters")
    for tag in query.tags:
        _check_values(tag.values, "tag values")
        inner = "SELECT item_seq FROM gw_tags WHERE name = ?"
        params.append(_utf8(tag.name))
        if tag.values:
            inner += f" AND value IN ({','.join('?' * len(tag.values))})"
            params.extend(_utf8(v) for v in tag.values)
        where.append(f"i.seq {'NOT IN' if tag.negate else 'IN'} ({inner})")
    _add_range(where, params, "i.height", query.min_height, query.max_height)
    return where, params
