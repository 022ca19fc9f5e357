"""``pyao attest``: the attestation it posts admits the item for WeaveDrive; bad input posts nothing."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from pyao.abc import ProcessContext
from pyao.cli import main
from pyao.data import Ed25519Signer, save_signer
from pyao.devices import GatewayReader, WeaveDrive
from pyao.errors import DeviceAccessDenied
from tests._weavedrive import gateway, item

GQL = "query($o:[String!]){transactions(owners:$o, sort:HEIGHT_ASC){edges{node{id block{height} tags{name value}}}}}"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with gateway(tmp_path_factory.mktemp("wd-attest")) as g:
        yield g


@pytest.fixture
def wallet(tmp_path):
    signer = Ed25519Signer.generate()
    path = tmp_path / "attestor.json"
    save_signer(signer, path)
    return signer, path


def posted_by(gw, address: str) -> list[dict]:
    body = httpx.post(gw.url + "/graphql", json={"query": GQL, "variables": {"o": [address]}}).json()
    return [e["node"] for e in body["data"]["transactions"]["edges"]]


def test_attest_admits_the_item(gw, wallet, capsys):
    signer, path = wallet
    data_id = gw.upload(item(b"model weights"))
    module = gw.upload(item(b"", tags=[("Type", "Module"), ("Extension", "WeaveDrive")]))
    proc = ProcessContext("P" * 43, "O" * 43, (("Module", module), ("Attestor", signer.address)))
    drive = WeaveDrive(GatewayReader(gw.url))
    with pytest.raises(DeviceAccessDenied):
        drive.open(f"/data/{data_id}", proc, {"Block-Height": gw.height()})

    assert main(["attest", data_id, "--wallet", str(path), "--gateway", gw.url]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["type"] == "Attestation" and line["item"] == data_id and line["attestor"] == signer.address
    (node,) = posted_by(gw, signer.address)
    assert node["id"] == line["posted"] and node["block"] is None
    tags = {t["name"]: t["value"] for t in node["tags"]}
    assert tags == {"Data-Protocol": "ao", "Type": "Attestation", "Message": data_id}

    h = gw.mine()
    assert WeaveDrive(GatewayReader(gw.url)).open(f"/data/{data_id}", proc, {"Block-Height": h}).read(0, 5) == b"model"
    drive.close()


def test_attest_individual_and_wait(gw, wallet, capsys):
    signer, path = wallet
    data_id = gw.upload(item(b"individual"))
    miner = threading.Timer(1.5, gw.mine)  # a block arrives while the command waits
    miner.start()
    try:
        code = main(["attest", data_id, "--individual", "--wait", "--wallet", str(path), "--gateway", gw.url])
    finally:
        miner.join()
    assert code == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x.get("type") for x in lines[:2]] == ["Attestation", "Available"]
    assert all(x["block_height"] >= 1 for x in lines[2:]) and len(lines) == 4
    kinds = sorted({t["name"]: t["value"] for t in n["tags"]}["Type"] for n in posted_by(gw, signer.address))
    assert kinds == ["Attestation", "Available"]


@pytest.mark.parametrize("bad", ["short", "a" * 44, "a" * 42 + "!", "../" + "a" * 40])
def test_bad_ids_post_nothing(gw, wallet, bad, capsys):
    signer, path = wallet
    assert main(["attest", bad, "--wallet", str(path), "--gateway", gw.url]) == 1
    assert "not an item id" in capsys.readouterr().err
    assert posted_by(gw, signer.address) == []


def test_unknown_item_needs_force(gw, wallet, capsys):
    signer, path = wallet
    missing = "A" * 43
    assert main(["attest", missing, "--wallet", str(path), "--gateway", gw.url]) == 1
    assert "has no item" in capsys.readouterr().err and posted_by(gw, signer.address) == []
    assert main(["attest", missing, "--force", "--wallet", str(path), "--gateway", gw.url]) == 0
    assert len(posted_by(gw, signer.address)) == 1


def test_unreachable_gateway(wallet, capsys):
    _, path = wallet
    assert main(["attest", "A" * 43, "--wallet", str(path), "--gateway", "http://127.0.0.1:9"]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_scheduler_without_wait_posts_nothing(gw, wallet, capsys):
    signer, path = wallet
    data_id = gw.upload(item(b"needs --wait"))
    code = main(["attest", data_id, "--scheduler", "http://127.0.0.1:1", "--wallet", str(path), "--gateway", gw.url])
    assert code == 1 and "--scheduler goes with --wait" in capsys.readouterr().err
    assert posted_by(gw, signer.address) == []


@pytest.mark.parametrize(
    "scheduler, said",
    [
        ("http://127.0.0.1:9", "scheduler at http://127.0.0.1:9 is unreachable"),
        (None, "answered GET /timestamp with 4"),
    ],
    ids=["unreachable", "not an SU"],
)
def test_a_bad_scheduler_is_one_clear_error_and_the_attestation_stays(gw, wallet, capsys, scheduler, said):
    """``--scheduler`` naming a unit that is down, or something that is no SU (here the gateway: it
    answers ``/timestamp`` with a 4xx), ends in one line and exit 1; the attestation posted before
    stays, mined."""
    signer, path = wallet
    data_id = gw.upload(item(b"bad scheduler " + said.encode()))
    miner = threading.Timer(1.5, gw.mine)
    miner.start()
    try:
        args = ["attest", data_id, "--wait", "--scheduler", scheduler or gw.url, "--wallet", str(path)]
        code = main([*args, "--gateway", gw.url])
    finally:
        miner.join()
    err = capsys.readouterr().err
    assert code == 1 and said in err and "Traceback" not in err
    (node,) = [n for n in posted_by(gw, signer.address) if data_id in str(n["tags"])]
    assert node["block"] is not None


@pytest.mark.parametrize("body", [b"{}", b"[]", b"not json", b'{"block_height": "twelve"}'])
def test_an_answer_without_a_block_height_is_a_unit_error(body):
    from pyao.cli._attest import _block_height
    from pyao.errors import UnitError

    answer = httpx.Response(200, content=body, request=httpx.Request("GET", "http://su.test/timestamp"))
    with pytest.raises(UnitError, match="without a block height"):
        _block_height(answer, "scheduler")
