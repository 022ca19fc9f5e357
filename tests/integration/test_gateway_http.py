"""The gateway over real HTTP (uvicorn on 127.0.0.1), driven by GatewayClient and httpx."""

from __future__ import annotations

import dataclasses

import httpx
import pytest

from pyao.client.gateway import GatewayClient
from pyao.config import GatewayConfig
from pyao.data import Bundle, DataItem, Ed25519Signer
from pyao.errors import NotFound, RequestError
from pyao.gateway import create_app, open_store
from pyao.gateway.remote import RemoteStore
from pyao.testing.servers import serve_app

pytestmark = pytest.mark.anyio
LIMIT = 4 * 1024 * 1024
ED = Ed25519Signer.from_seed(b"\x07" * 32)

# Query strings with the shapes and variables the official ao software sends (written for these tests).
CU_META = """query GetTransactions($processIds: [ID!]!, $skipTags: Boolean!, $skipSignature: Boolean!,
  $skipAnchor: Boolean!) { transactions(ids: $processIds) { edges { node { id signature @skip(if: $skipSignature)
  anchor @skip(if: $skipAnchor) owner { address key } tags @skip(if: $skipTags) { name value } recipient } } } }"""
SCHEDULER_LOCATIONS = """query GetSchedulerLocations($cursor: String) { transactions(
  tags: [{ name: "Type", values: ["Scheduler-Location"] } { name: "Data-Protocol", values: ["ao"] }],
  first: 100 after: $cursor) { edges { node { id owner { address } tags { name value } block { id height timestamp } }
  cursor } pageInfo { hasNextPage } } }"""
BY_OWNER_AND_TAGS = """query ($owners: [String!]!, $tags: [TagFilter!], $first: Int, $after: String, $sort: SortOrder) {
  transactions(owners: $owners, tags: $tags, first: $first, after: $after, sort: $sort) { pageInfo { hasNextPage }
  edges { cursor node { id anchor signature recipient owner { address key } tags { name value } data { size type }
  block { id height timestamp } bundledIn { id } } } } }"""
CHECKPOINT = """query GetCheckpoint($owner: String!, $processId: String!, $nonce: String!) { transactions(
  tags: [{ name: "Process", values: [$processId] } { name: "Nonce", values: [$nonce] } { name: "Type",
  values: ["Checkpoint"] }], owners: [$owner] first: 1) {
  edges { node { id owner { address } tags { name value } } } } }"""
BLOCKS = """query GetBlocks($min: Int!, $limit: Int!) { blocks(height: { min: $min }, first: $limit, sort: HEIGHT_ASC) {
  pageInfo { hasNextPage } edges { node { timestamp height } } } }"""


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def base_url(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    with serve_app(create_app(store, GatewayConfig(block_seconds=0, max_upload_bytes=LIMIT))) as url:
        yield url


@pytest.fixture
async def client(base_url):
    async with GatewayClient(base_url) as client:
        yield client


def _item(data=b"d", signer=ED, tags=(), **kw) -> DataItem:
    return DataItem.create(data, signer=signer, tags=list(tags), **kw)


async def _count(client) -> int:
    total, after = 0, None
    while True:
        data = await client.graphql(
            "query ($after: String) { transactions(first: 100, after: $after) "
            "{ pageInfo { hasNextPage } edges { cursor } } }",
            {"after": after},
        )
        edges = data["transactions"]["edges"]
        total += len(edges)
        if not data["transactions"]["pageInfo"]["hasNextPage"]:
            return total
        after = edges[-1]["cursor"]


async def test_upload_read_mine_and_status(client, base_url, signers):
    items = [
        _item(b"data of %d" % t * 50, signer=signers[t], tags=[("Type", "Message"), ("N", str(t))]) for t in signers
    ]
    for item in items:
        assert (await client.upload(item.to_bytes()))["id"] == item.id
    proc = _item(b"proc", tags=[("Type", "Process"), ("Scheduler", "S" * 43), ("Content-Type", "text/x-lua")])
    inner = Bundle.of([proc, items[0]]).to_item(signers[1])
    outer = Bundle.of([inner, _item(b"leaf")]).to_item(ED, tags=[("Content-Type", "application/x-bundle")])
    assert (await client.upload(outer.to_bytes()))["id"] == outer.id
    assert (await client.upload(outer.to_bytes()))["id"] == outer.id  # idempotent
    for item in items:
        assert await client.raw(item.id) == item.data
        assert await client.raw(item.id, start=5, end=9) == item.data[5:10]
        assert await client.raw(item.id, start=len(item.data) - 3) == item.data[-3:]
        assert await client.exists(item.id)
    assert not await client.exists("n" * 42 + "A")
    async with httpx.AsyncClient(base_url=base_url) as http:
        r = await http.get(f"/{proc.id}")
        assert r.content == b"proc" and r.headers["type"] == "Process" and r.headers["scheduler"] == "S" * 43
        assert r.headers["content-type"] == "text/x-lua" and r.headers["content-length"] == "4"
        r = await http.head(f"/{proc.id}")
        assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == "4"
        r = await http.get(f"/raw/{proc.id}", headers={"range": "bytes=-2"})
        assert (r.status_code, r.content, r.headers["content-range"]) == (206, b"oc", "bytes 2-3/4")
        r = await http.get(f"/raw/{proc.id}", headers={"range": "bytes=4-"})
        assert r.status_code == 416 and r.headers["content-range"] == "bytes */4"
        assert (await http.get(f"/tx/{proc.id}/status")).status_code == 202
        tx = (await http.get(f"/tx/{proc.id}")).json()
        assert tx["id"] == proc.id and tx["bundledIn"] == inner.id and tx["data_size"] == "4"
        height_before = await client.height()
        mined = (await http.post("/mine")).json()
        assert mined["height"] == height_before + 1 == await client.height()
        status = (await http.get(f"/tx/{proc.id}/status")).json()
        assert status == {
            "block_height": mined["height"],
            "block_indep_hash": mined["current"],
            "number_of_confirmations": 1,
        }
        block = (await http.get(f"/block/height/{mined['height']}")).json()
        assert block["indep_hash"] == mined["current"] and proc.id in block["txs"] and outer.id in block["txs"]
        assert (await http.get("/block/height/99")).status_code == 404
        assert (await http.get("/")).json()["height"] == mined["height"]
    data = await client.graphql(
        CU_META, {"processIds": [proc.id], "skipTags": False, "skipSignature": True, "skipAnchor": False}
    )
    node = data["transactions"]["edges"][0]["node"]
    assert node["id"] == proc.id and "signature" not in node and node["owner"]["address"] == ED.address
    assert node["tags"][0] == {"name": "Type", "value": "Process"} and node["recipient"] == ""


async def test_graphql_tag_semantics_and_official_shapes(client):
    su = Ed25519Signer.from_seed(b"\x09" * 32)
    location = _item(
        b"", signer=su, tags=[("Data-Protocol", "ao"), ("Type", "Scheduler-Location"), ("Url", "http://su")]
    )
    other = _item(b"", tags=[("Data-Protocol", "ao"), ("Type", "Process"), ("Name", "named")])
    ckpt = _item(b"", tags=[("Process", other.id), ("Nonce", "7"), ("Type", "Checkpoint")])
    for item in (location, other, ckpt):
        await client.upload(item.to_bytes())
    data = await client.graphql(SCHEDULER_LOCATIONS, {})
    assert [e["node"]["id"] for e in data["transactions"]["edges"]] == [location.id]
    assert data["transactions"]["edges"][0]["node"]["block"] is None  # pending
    data = await client.graphql(
        BY_OWNER_AND_TAGS,
        {
            "owners": [ED.address],
            "tags": [{"name": "Data-Protocol", "values": ["ao"]}, {"name": "Name", "values": ["named", "x"]}],
        },
    )
    assert [e["node"]["id"] for e in data["transactions"]["edges"]] == [other.id]
    data = await client.graphql(CHECKPOINT, {"owner": ED.address, "processId": other.id, "nonce": "7"})
    assert [e["node"]["id"] for e in data["transactions"]["edges"]] == [ckpt.id]
    data = await client.graphql(CHECKPOINT, {"owner": su.address, "processId": other.id, "nonce": "7"})
    assert data["transactions"]["edges"] == []


@pytest.mark.parametrize("sort", ["HEIGHT_ASC", "HEIGHT_DESC"])
async def test_graphql_pagination_with_inserts_between_pages(client, base_url, sort):
    made = []
    async with httpx.AsyncClient(base_url=base_url) as http:
        for i in range(23):
            item = _item(b"%d" % i, tags=[("Kind", "paged")])
            await client.upload(item.to_bytes())
            made.append(item.id)
            if i % 5 == 4:
                await http.post("/mine")
        seen, after = [], None
        while True:
            variables = {
                "owners": [ED.address],
                "tags": [{"name": "Kind", "values": ["paged"]}],
                "first": 4,
                "sort": sort,
            }
            if after:
                variables["after"] = after
            page = (await client.graphql(BY_OWNER_AND_TAGS, variables))["transactions"]
            seen += [e["node"]["id"] for e in page["edges"]]
            late = _item(b"late %d" % len(seen), tags=[("Kind", "paged")])
            await client.upload(late.to_bytes())
            made.append(late.id)
            await http.post("/mine")
            if not page["pageInfo"]["hasNextPage"]:
                break
            after = page["edges"][-1]["cursor"]
    assert len(seen) == len(set(seen))
    if sort == "HEIGHT_DESC":
        assert seen == list(reversed(made[:23]))
    else:
        assert seen == made[: len(seen)] and len(seen) >= 23


async def test_blocks_query(client, base_url):
    async with httpx.AsyncClient(base_url=base_url) as http:
        await http.post("/mine/5")
    data = await client.graphql(BLOCKS, {"min": 2, "limit": 3})
    assert [e["node"]["height"] for e in data["blocks"]["edges"]] == [2, 3, 4]
    assert data["blocks"]["pageInfo"]["hasNextPage"] is True
    stamps = [e["node"]["timestamp"] for e in data["blocks"]["edges"]]
    assert stamps == sorted(stamps)


async def test_bad_input_changes_nothing(client, base_url):
    good = _item(b"good")
    await client.upload(good.to_bytes())
    before = await _count(client)
    forged = dataclasses.replace(_item(b"x"), data=b"y")
    bad_nested = Bundle.of([_item(b"fine"), forged]).to_item(ED)
    async with httpx.AsyncClient(base_url=base_url) as http:
        for body in (forged.to_bytes(), bad_nested.to_bytes(), good.to_bytes()[:-30][:100], b"garbage", b""):
            r = await http.post("/tx/arweave", content=body)
            assert r.status_code == 400 and "error" in r.json()
        r = await http.post("/tx", content=_item(b"z" * (LIMIT + 1)).to_bytes())
        assert r.status_code == 413 and "error" in r.json()
        missing = "n" * 42 + "A"
        bad_paths = [
            ("/not-an-id", 400),
            ("/" + missing, 404),
            ("/raw/short", 400),
            ("/tx/x/status", 400),
            ("/tx/" + missing, 404),
            ("/block/height/-1", 400),
            ("/a/b/c", 404),
            ("/mine/0", 400),
        ]
        for path, status in bad_paths:
            r = await http.request("POST" if path.startswith("/mine") else "GET", path)
            assert r.status_code == status, path
            assert "error" in r.json()
        for body in ({"query": "{ transactions { nope } }"}, {"query": "{"}, {"query": 5}, {"nothing": 1}, []):
            r = await http.post("/graphql", json=body)
            assert r.status_code == 400
        r = await http.post("/graphql", content=b"\xff not json")
        assert r.status_code == 400 and "error" in r.json()
        r = await http.post("/graphql", json={"query": BLOCKS, "variables": {"min": "x", "limit": 1}})
        assert r.status_code == 400 and r.json()["errors"]
        r = await http.post("/graphql", json={"query": '{ transactions(after: "bogus") { edges { cursor } } }'})
        assert r.status_code == 400 and "invalid cursor" in r.json()["errors"][0]["message"]
    with pytest.raises(RequestError):
        await client.graphql("{ transactions(first: -1) { edges { cursor } } }")
    assert await _count(client) == before


async def test_remote_read_only_backend(base_url, client):
    item = _item(b"0123456789" * 300_000, tags=[("Type", "Message"), ("Content-Type", "text/plain")])
    await client.upload(item.to_bytes())
    async with httpx.AsyncClient(base_url=base_url) as http:
        await http.post("/mine")
    remote = RemoteStore(base_url)
    try:
        info = await remote.info()
        assert info.height == 1
        record = await remote.item(item.id)
        assert record.id == item.id and record.signature_type == 2 and record.tags == item.tags
        assert record.data_size == len(item.data) and record.block.height == 1
        assert await remote.item("n" * 42 + "A") is None
        data = b"".join([p async for p in remote.read(item.id, 5, len(item.data) - 1)])
        assert data == item.data[5:]
        block, txs = await remote.block(1)
        assert txs == [item.id] and block.height == 1
        assert await remote.block(50) is None
        with serve_app(create_app(GatewayConfig(db=base_url, block_seconds=0))) as proxy_url:
            async with GatewayClient(proxy_url) as proxy:
                assert await proxy.height() == 1
                assert await proxy.raw(item.id, start=10, end=19) == item.data[10:20]
                data = await proxy.graphql(BY_OWNER_AND_TAGS, {"owners": [ED.address], "first": 1})
                assert data["transactions"]["edges"][0]["node"]["id"] == item.id
                with pytest.raises(RequestError, match="read-only"):
                    await proxy.upload(_item(b"new").to_bytes())
                async with httpx.AsyncClient(base_url=proxy_url) as http:
                    r = await http.get(f"/{item.id}", headers={"range": "bytes=0-3"})
                    assert r.status_code == 206 and r.content == b"0123" and r.headers["type"] == "Message"
                    assert (await http.post("/mine")).status_code == 400
                with pytest.raises(NotFound):
                    await proxy.raw("n" * 42 + "A")
    finally:
        await remote.close()


async def test_block_sealer_runs_in_the_background(tmp_path):
    store = open_store("sqlite://:memory:")
    with serve_app(create_app(store, GatewayConfig(block_seconds=0.05))) as url:
        async with GatewayClient(url) as client:
            item = _item(b"sealed by the timer")
            await client.upload(item.to_bytes())
            import anyio

            for _ in range(100):
                record = await store.item(item.id)
                if record.block is not None:
                    break
                await anyio.sleep(0.02)
            assert record.block is not None and await client.height() >= 1
    await store.close()
