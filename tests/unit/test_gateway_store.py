"""One suite for every relational GatewayStore backend: SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from pyao.data import Bundle, DataItem, Ed25519Signer
from pyao.errors import NotFound, RequestError
from pyao.gateway import _sql, open_store, prepare_upload
from pyao.gateway._model import BlockQuery, Sort, TagFilter, TransactionQuery

pytestmark = pytest.mark.anyio

ED = [Ed25519Signer.from_seed(bytes([i]) * 32) for i in range(3)]


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request, tmp_path):
    sqlite = f"sqlite:///{tmp_path / 'gw.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    store = open_store(url)
    yield store
    await store.close()


def _item(data=b"d", signer=ED[0], tags=(), **kw) -> DataItem:
    return DataItem.create(data, signer=signer, tags=list(tags), **kw)


async def _put(store, item: DataItem) -> bool:
    return await store.put(prepare_upload(item.to_bytes()))


async def _read(store, item_id, start, end) -> bytes:
    return b"".join([piece async for piece in store.read(item_id, start, end)])


async def _ids(store, **query) -> list[str]:
    page = await store.transactions(TransactionQuery(first=100, **query))
    return [record.id for _, record in page.edges]


async def test_fresh_store_has_a_genesis_block(store):
    info = await store.info()
    assert info.height == 0 and len(info.current) == 43 and info.pending == 0
    block, txs = await store.block(0)
    assert block.id == info.current and block.previous == "" and txs == []
    assert await store.block(1) is None


async def test_put_read_and_idempotence(store, signers):
    items = [_item(b"payload %d" % t, signer=signers[t], tags=[("T", str(t))]) for t in (1, 2, 3, 4)]
    for item in items:
        assert await _put(store, item) is True
    assert await _put(store, items[0]) is False
    for item in items:
        record = await store.item(item.id)
        assert record.id == item.id and record.signature == item.signature and record.owner == item.owner
        assert record.owner_address == item.owner_address and record.signature_type == item.signature_type
        assert record.tags == item.tags and record.data_size == len(item.data) and record.block is None
        assert await _read(store, item.id, 0, len(item.data) - 1) == item.data
        assert await _read(store, item.id, 3, 5) == item.data[3:6]
    assert await store.item("x" * 43) is None
    with pytest.raises(NotFound):
        await _read(store, "x" * 43, 0, 0)
    assert (await store.info()).pending == 4


async def test_reads_across_chunks(store, monkeypatch):
    monkeypatch.setattr(_sql, "CHUNK_BYTES", 100)
    data = bytes(range(256)) * 10
    bundle = Bundle.of([_item(b"tiny"), _item(data, signer=ED[1])]).to_item(ED[2])
    await store.put(prepare_upload(bundle.to_bytes()))
    inner = bundle_items = Bundle.from_item(bundle).items
    inner = bundle_items[1]
    for start, end in [(0, len(data) - 1), (0, 0), (99, 100), (150, 1234), (len(data) - 1, len(data) - 1)]:
        pieces = [p async for p in store.read(inner.id, start, end)]
        assert b"".join(pieces) == data[start : end + 1]
        assert all(len(p) <= 100 for p in pieces)
    assert await _read(store, bundle_items[0].id, 0, 3) == b"tiny"
    assert await _read(store, bundle.id, 0, len(bundle.data) - 1) == bundle.data
    with pytest.raises(RequestError):
        await _read(store, inner.id, 0, len(data))


async def test_nested_items_keep_first_location_and_bundled_in(store):
    alone = _item(b"first alone")
    await _put(store, alone)
    bundle = Bundle.of([alone, _item(b"new")]).to_item(ED[1])
    assert await store.put(prepare_upload(bundle.to_bytes())) is True
    assert (await store.item(alone.id)).bundled_in is None
    assert await _read(store, alone.id, 0, 10) == b"first alone"
    assert await _ids(store, bundled_in=(bundle.id,)) == [Bundle.from_item(bundle).items[1].id]


async def test_seal_assigns_pending_items(store):
    a, b = _item(b"a"), _item(b"b")
    await _put(store, a)
    block1 = await store.seal(timestamp=1_700_000_000)
    await _put(store, b)
    assert block1.height == 1 and (await store.info()).pending == 1
    assert (await store.item(a.id)).block == block1
    assert (await store.item(b.id)).block is None
    block2 = await store.seal(timestamp=1_600_000_000)  # clock went back: timestamps never do
    assert block2.previous == block1.id and block2.timestamp == block1.timestamp
    assert await store.block(2) == (block2, [b.id])
    assert await store.block(1) == (block1, [a.id])
    info = await store.info()
    assert (info.height, info.current, info.pending) == (2, block2.id, 0)


async def test_transaction_filters(store, signers):
    target = "T" * 42 + "A"
    p1 = _item(b"1", tags=[("Type", "Process"), ("Name", "alpha")])
    p2 = _item(b"2", signer=ED[1], tags=[("Type", "Process"), ("Name", "beta")])
    m1 = _item(b"3", tags=[("Type", "Message"), ("Name", "alpha")], target=target)
    m2 = _item(b"4", signer=signers[3], tags=[("Type", "Message"), ("Action", "Eval")])
    for item in (p1, p2, m1):
        await _put(store, item)
    await store.seal()
    await _put(store, m2)
    as_set = lambda ids: set(ids)  # noqa: E731
    assert as_set(await _ids(store)) == {p1.id, p2.id, m1.id, m2.id}
    assert as_set(await _ids(store, tags=(TagFilter("Type", ("Process",)),))) == {p1.id, p2.id}
    both = (TagFilter("Type", ("Process",)), TagFilter("Name", ("alpha",)))
    assert await _ids(store, tags=both) == [p1.id]  # AND across filters
    either = (TagFilter("Name", ("alpha", "beta")),)
    assert as_set(await _ids(store, tags=either)) == {p1.id, p2.id, m1.id}  # OR within values
    assert await _ids(store, tags=(TagFilter("Name", ("alpha",), negate=True),)) == [m2.id, p2.id]
    assert as_set(await _ids(store, tags=(TagFilter("Action", ()),))) == {m2.id}
    assert await _ids(store, tags=(TagFilter("Type", ("Nope",)),)) == []
    assert as_set(await _ids(store, owners=(ED[0].address,))) == {p1.id, m1.id}
    assert await _ids(store, owners=(m2.owner_address,)) == [m2.id]
    assert await _ids(store, recipients=(target,)) == [m1.id]
    assert as_set(await _ids(store, ids=(p1.id, m2.id, "n" * 43))) == {p1.id, m2.id}
    assert await _ids(store, ids=("caf\u00e9\x00",)) == []
    assert as_set(await _ids(store, min_height=1, max_height=1)) == {p1.id, p2.id, m1.id}
    assert await _ids(store, min_height=2) == []
    assert await _ids(store, sort=Sort.ASC) == [p1.id, p2.id, m1.id, m2.id]
    assert await _ids(store, sort=Sort.DESC) == [m2.id, m1.id, p2.id, p1.id]
    weird = (TagFilter("Name\x00", ("\x00",)), TagFilter("\ud800", ("\udfff",)))
    assert await _ids(store, tags=weird) == []


@pytest.mark.parametrize("sort", [Sort.ASC, Sort.DESC])
async def test_pagination_never_skips_or_repeats(store, sort):
    before = [_item(b"%d" % i, tags=[("Page", "yes")]) for i in range(7)]
    for i, item in enumerate(before):
        await _put(store, item)
        if i % 3 == 2:
            await store.seal()
    seen: list[str] = []
    after = None
    extra = 0
    while True:
        page = await store.transactions(
            TransactionQuery(tags=(TagFilter("Page", ("yes",)),), first=2, after=after, sort=sort)
        )
        seen += [record.id for _, record in page.edges]
        # Between pages: new items arrive, and pending ones are sealed.
        await _put(store, _item(b"late %d" % extra, tags=[("Page", "yes")]))
        extra += 1
        if extra % 2:
            await store.seal()
        if not page.has_next:
            break
        after = page.edges[-1][0]
    assert len(seen) == len(set(seen))
    if sort is Sort.DESC:
        assert seen == [item.id for item in reversed(before)]
    else:
        assert seen[:7] == [item.id for item in before]  # and the late ones after, in order


async def test_first_is_clamped_and_checked(store):
    for i in range(3):
        await _put(store, _item(b"%d" % i))
    page = await store.transactions(TransactionQuery(first=0))
    assert page.edges == () and page.has_next
    assert len((await store.transactions(TransactionQuery(first=10**6))).edges) == 3
    with pytest.raises(RequestError):
        await store.transactions(TransactionQuery(first=-1))
    for bad in ("garbage", "dHg6", "YmxvY2s6MQ", "", "dHg6LTE"):
        with pytest.raises(RequestError):
            await store.transactions(TransactionQuery(after=bad))


async def test_blocks_pagination(store):
    for t in range(5):
        await store.seal(timestamp=1_700_000_000 + t)
    page = await store.blocks(BlockQuery(min_height=2, first=2, sort=Sort.ASC))
    assert [b.height for _, b in page.edges] == [2, 3] and page.has_next
    page = await store.blocks(BlockQuery(min_height=2, first=2, after=page.edges[-1][0], sort=Sort.ASC))
    assert [b.height for _, b in page.edges] == [4, 5] and not page.has_next
    page = await store.blocks(BlockQuery(first=3))
    assert [b.height for _, b in page.edges] == [5, 4, 3] and page.has_next
    block5 = page.edges[0][1]
    page = await store.blocks(BlockQuery(ids=(block5.id,)))
    assert [b for _, b in page.edges] == [block5]
    assert [b.height for _, b in (await store.blocks(BlockQuery(max_height=1, sort=Sort.ASC))).edges] == [0, 1]


async def test_reopen_keeps_everything(tmp_path):
    url = f"sqlite:///{tmp_path / 'again.db'}"
    store = open_store(url)
    item = _item(b"kept")
    await _put(store, item)
    block = await store.seal()
    await store.close()
    store = open_store(url)
    assert (await store.item(item.id)).block == block
    assert (await store.info()).height == 1
    await store.close()
