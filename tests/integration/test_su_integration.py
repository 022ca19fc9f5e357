"""The SU against the real gateway, both over real HTTP on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from pyao.config import GatewayConfig, SchedulerConfig
from pyao.data import Bundle, DataItem, Ed25519Signer, Wallet, ao
from pyao.gateway import create_app as gateway_app
from pyao.su import create_app
from pyao.testing.servers import serve_app
from tests._su import check_node, tag, verify_chain, walk_schedule

USER = Ed25519Signer.from_seed(bytes([11]) * 32)


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory):
    db = tmp_path_factory.mktemp("gw") / "gw.db"
    with serve_app(gateway_app(GatewayConfig(db=f"sqlite:///{db}", block_seconds=0))) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def su_db(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/su.db"
    return request.getfixturevalue("postgres_dsn")


@pytest.mark.parametrize("wallet_type", ["ed25519", "arweave"])
def test_schedule_over_http_reaches_the_gateway(gateway_url, su_db, tmp_path, wallet_type):
    # A fresh key per case: the cases share one gateway, and owner queries must see only their own items.
    signer = Wallet.generate() if wallet_type == "arweave" else None
    config = SchedulerConfig(db=su_db, gateway_url=gateway_url, wallet=tmp_path / "su.json", wallet_type=wallet_type)
    app = create_app(config, signer=signer)
    with serve_app(app) as su_url:
        asyncio.run(_scenario(su_url, gateway_url, app.state.unit))


async def _scenario(su_url: str, gateway_url: str, unit) -> None:
    async with httpx.AsyncClient(base_url=su_url, timeout=30) as su:
        address = (await su.get("/")).json()["address"]
        process = DataItem.create(b"{}", signer=USER, tags=ao.process_tags("m" * 43, address, [("Name", "t")]))
        r = await su.post("/", content=process.to_bytes())
        assert r.status_code == 200, r.text
        pid = process.id
        messages = [
            DataItem.create(f"hello {n}", signer=USER, tags=ao.message_tags([("Action", "Eval")]), target=pid)
            for n in range(25)
        ]
        answers = await asyncio.gather(*(su.post("/", content=m.to_bytes()) for m in messages))
        assert [a.status_code for a in answers] == [200] * 25
        nodes = await walk_schedule(su, pid, limit=3)
        verify_chain(pid, nodes)
        check_node(nodes[0], first=True)
        for node in nodes[1:]:
            check_node(node)
        assert sorted(n["message"]["id"] for n in nodes[1:]) == sorted(m.id for m in messages)
        height = int(tag(nodes[-1]["assignment"]["tags"], "Block-Height"))
        assert height >= 0
        await _lean_and_full_reads_agree(su, pid, messages[3].id)

        # every slot reaches the gateway: its assignment and its item side by side in a bundle signed by the SU
        deadline = time.monotonic() + 20
        while unit.store.counts()[1] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert unit.store.counts()[1] == 0
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as gw:
        await gw.post("/mine")
        assert (await gw.get(f"/raw/{messages[0].id}")).content == b"hello 0"
        assert (await gw.get(f"/raw/{pid}")).content == b"{}"
        query = "query($ids:[ID!]){transactions(ids:$ids, first:100){edges{node{id bundledIn{id}}}}}"
        ids = [n["assignment"]["id"] for n in nodes] + [m.id for m in messages]
        found = (await gw.post("/graphql", json={"query": query, "variables": {"ids": ids}})).json()
        edges = found["data"]["transactions"]["edges"]
        assert {e["node"]["id"] for e in edges} == set(ids)
        parents = {e["node"]["bundledIn"]["id"] for e in edges}  # every assignment and item is bundled
        owner = "query($ids:[ID!]){transactions(ids:$ids){edges{node{id owner{address} tags{name value}}}}}"
        found = (await gw.post("/graphql", json={"query": owner, "variables": {"ids": sorted(parents)}})).json()
        for edge in found["data"]["transactions"]["edges"]:  # ... in a bundle signed by the SU
            assert edge["node"]["owner"]["address"] == address
            assert {"name": "Bundle-Format", "value": "binary"} in edge["node"]["tags"]
        scheduled = []
        for parent in sorted(parents):
            pairs = slot_pairs(Bundle.from_bytes((await gw.get(f"/raw/{parent}")).content, verify=True).items)
            assert all(a.tag("Process") == pid for a, _ in pairs)
            nonces = [int(a.tag("Nonce")) for a, _ in pairs]
            assert nonces == sorted(nonces)  # in slot order
            scheduled += [(int(a.tag("Nonce")), a.id, item.id) for a, item in pairs]
        expected = [(n, node["assignment"]["id"], node["message"]["id"]) for n, node in enumerate(nodes)]
        assert sorted(scheduled) == expected  # each slot once, with its own item
        location = (
            'query($o:[String!]){transactions(owners:$o, tags:[{name:"Type", values:["Scheduler-Location"]}])'
            "{edges{node{id tags{name value}}}}}"
        )
        found = (await gw.post("/graphql", json={"query": location, "variables": {"o": [address]}})).json()
        tags = found["data"]["transactions"]["edges"][0]["node"]["tags"]
        assert {"name": "Url", "value": unit.url} in tags


async def _lean_and_full_reads_agree(su: httpx.AsyncClient, pid: str, mid: str) -> None:
    """``GET /{id}?process-id=`` in plain form is answered in front of Starlette; with an escape
    in its query (``%2D`` is ``-``) the full route answers it: the same bytes and statuses."""
    cases = [
        (f"/{pid}", f"process-id={pid}&limit=4", f"process-id={pid}&limit=4&x=%2D"),
        (f"/{pid}", f"process-id={pid}&from-nonce=2&to-nonce=5", f"process%2Did={pid}&from-nonce=2&to-nonce=5"),
        (f"/{mid}", f"process-id={pid}", f"process-id={pid}&x=a+b"),
        (f"/{mid}", f"process-id={pid}&limit=0", f"process-id={pid}&limit=0&x=%2D"),  # 400
        (f"/{mid}", f"process-id={mid}", f"process-id={mid}&x=%2D"),  # 404: not this process's
        (f"/{pid}", f"process-id={pid}&from=abc", f"process-id={pid}&from=abc&x=%2D"),  # 400
    ]
    for path, lean, full in cases:
        a, b = await su.get(f"{path}?{lean}"), await su.get(f"{path}?{full}")
        assert (a.status_code, a.content) == (b.status_code, b.content), (path, lean)
        assert a.headers["content-type"] == "application/json"
    assert [a.status_code for a in [await su.get(f"{p}?{q}") for p, q, _ in cases]] == [200, 200, 200, 400, 404, 400]


def slot_pairs(items) -> list:
    """The (assignment, item) pairs of an upload bundle, checking its shape: each assignment is
    directly followed by the item it schedules (the process item at nonce 0, else its Message).
    The SU's own Scheduler-Location record may share an upload with slots; it stands alone."""
    pairs, items = [], [i for i in items if i.tag("Type") != "Scheduler-Location"]
    while items:
        assignment = items.pop(0)
        assert assignment.tag("Type") == "Assignment", assignment.tag("Type")
        scheduled = assignment.tag("Message") or assignment.tag("Process")
        assert items and items[0].id == scheduled  # the slot's item comes right after its assignment
        pairs.append((assignment, items.pop(0)))
    return pairs


def test_bundle_shape(rsa_wallet):
    """What the uploader sends for one slot: a bundle item signed by the SU holding [assignment, item]."""
    from pyao.su._core import MESSAGE, build_entry, next_slot
    from pyao.su._uploader import entry_bundle

    pid = DataItem.create(b"", signer=USER, tags=ao.process_tags("m" * 43, "s" * 43)).id
    msg = DataItem.create(b"m", signer=USER, tags=ao.message_tags(), target=pid)
    slot = next_slot(None, pid, 1)
    entry = build_entry(rsa_wallet, slot, process_id=pid, block_height=1, kind=MESSAGE, message_id=msg.id,
                        message=msg.to_bytes())  # fmt: skip
    item = DataItem.from_bytes(entry_bundle(entry, rsa_wallet), verify=True)
    assert item.owner == rsa_wallet.owner and isinstance(rsa_wallet, Wallet)
    assert Bundle.from_item(item, verify=True).ids == [entry.assignment_id, msg.id]


def test_upload_body_shape():
    """Several records in one upload: ONE bundle signed by the SU holding, in order, each slot's
    assignment followed by its item (an assignment of an existing tx alone), and standalone items;
    a lone standalone item goes as itself."""
    from pyao.su._core import ASSIGNED, MESSAGE, PROCESS, build_entry, location_item, next_slot
    from pyao.su._uploader import bundle_bytes, upload_body

    su = Ed25519Signer.from_seed(bytes([4]) * 32)
    process = DataItem.create(b"p", signer=USER, tags=ao.process_tags("m" * 43, su.address))
    pid = process.id
    msg = DataItem.create(b"m", signer=USER, tags=ao.message_tags(), target=pid)
    first = build_entry(su, next_slot(None, pid, 1), process_id=pid, block_height=1, kind=PROCESS, message_id=pid,
                        message=process.to_bytes())  # fmt: skip
    second = build_entry(su, next_slot(first, pid, 2), process_id=pid, block_height=1, kind=MESSAGE,
                         message_id=msg.id, message=msg.to_bytes())  # fmt: skip
    third = build_entry(su, next_slot(second, pid, 3), process_id=pid, block_height=1, kind=ASSIGNED,
                        message_id="t" * 43)  # fmt: skip
    location = location_item(su, "http://su", 1000).to_bytes()
    body = DataItem.from_bytes(upload_body([first, second, location, third], su), verify=True)
    assert body.owner == su.owner and body.tag("Bundle-Format") == "binary"
    items = Bundle.from_item(body, verify=True).items
    assert [i.id for i in items] == [first.assignment_id, pid, second.assignment_id, msg.id,
                                     DataItem.from_bytes(location).id, third.assignment_id]  # fmt: skip
    assert upload_body([location], su) == location
    assert bundle_bytes([i.to_bytes() for i in items]) == Bundle.of(items).to_bytes()
