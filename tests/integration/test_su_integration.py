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
def test_schedule_over_http_reaches_the_gateway(gateway_url, su_db, tmp_path, wallet_type, rsa_wallet):
    if wallet_type == "arweave" and not su_db.startswith("sqlite"):
        pytest.skip("RSA SU wallet: one backend is enough")
    signer = rsa_wallet if wallet_type == "arweave" else None
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

        # every slot reaches the gateway as a bundle [assignment, item] signed by the SU
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
        parent = edges[0]["node"]["bundledIn"]["id"]
        inner = Bundle.from_bytes((await gw.get(f"/raw/{parent}")).content, verify=True)
        assert len(inner.items) == 2 and inner.items[0].tag("Type") == "Assignment"
        location = (
            'query($o:[String!]){transactions(owners:$o, tags:[{name:"Type", values:["Scheduler-Location"]}])'
            "{edges{node{id tags{name value}}}}}"
        )
        found = (await gw.post("/graphql", json={"query": location, "variables": {"o": [address]}})).json()
        tags = found["data"]["transactions"]["edges"][0]["node"]["tags"]
        assert {"name": "Url", "value": unit.url} in tags


def test_bundle_shape(rsa_wallet):
    """What the uploader sends: a bundle item signed by the SU holding [assignment, item]."""
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
