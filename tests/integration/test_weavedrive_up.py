"""WeaveDrive on the embedded network (``pyao up``): store an item, ``pyao attest`` it, read it from a process."""

from __future__ import annotations

import json
import time

import httpx
import pytest

import pyao
from pyao.cli import main
from pyao.data import DataItem
from pyao.testing.network import running_network, separate_units

pytestmark = pytest.mark.slow


def test_attest_then_read_on_pyao_up(tmp_path, capsys):
    """The first message sent once the attestation is mined reads the file: the gateway of ``pyao up``
    hands each sealed block's height to its SU at once (a poll a second later left a window in which
    that message was stamped with the height before, and WeaveDrive refused the item)."""
    with running_network(tmp_path, block_seconds=0.5) as net, _sdk(net) as sdk:
        pid, data = _reader_and_item(net, sdk, b"weights: 0.5 0.25\n")
        assert main(["attest", data.id, "--wallet", str(net.wallet_path), "--gateway", net.gateway]) == 0
        attestation = json.loads(capsys.readouterr().out.splitlines()[-1])["posted"]
        mined_at = _mined(net.gateway, attestation)  # watched closely: the message goes at once
        code = f"local f = io.open('/data/{data.id}') return f:read('l') .. ' / ' .. f:seek('end')"
        mid = sdk.message(pid, tags=[("Action", "Eval")], data=code)
        result = sdk.result(mid, pid)
        assert "Error" not in result, result  # "not admissible": stamped with the height before
        assert result["Output"]["data"] == "weights: 0.5 0.25 / 18", result
        assert mined_at >= 1


def _sdk(net):
    return pyao.connect(mu_url=net.mu, cu_url=net.cu, gateway_url=net.gateway, signer=net.wallet)


def _reader_and_item(net, sdk, content: bytes) -> tuple[str, DataItem]:
    """A WeaveDrive process attested by the network's wallet, and an item holding ``content`` on the
    gateway (not attested yet)."""
    wallet = net.wallet
    tags = [("Extension", "WeaveDrive"), ("Attestor", wallet.address), ("Authority", net.mu_address())]
    pid = sdk.spawn(net.module_id, net.scheduler_address(), tags=tags)
    data = DataItem.create(content, signer=wallet, tags=[("Content-Type", "text/plain")])
    assert httpx.post(net.gateway + "/tx/arweave", content=data.to_bytes(), timeout=60).status_code == 200
    return pid, data


def _mined(gateway: str, item_id: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = httpx.get(f"{gateway}/tx/{item_id}/status", timeout=10)
        if r.status_code == 200:
            return int(r.json()["block_height"])
        time.sleep(0.01)
    raise AssertionError(f"{item_id} was not mined in 60 s")


def test_attest_waits_for_a_separate_scheduler(tmp_path, capsys):
    """Units as separate processes: the SU learns a new block by polling its gateway, so
    ``--scheduler`` makes ``attest --wait`` return only once that SU stamps the attestation's height;
    a message sent right then reads the item."""
    with separate_units(tmp_path, block_seconds=0.5) as net, _sdk(net) as sdk:
        pid, data = _reader_and_item(net, sdk, b"separate\n")
        args = ["attest", data.id, "--wait", "--scheduler", net.su, "--wallet", str(net.wallet_path)]
        assert main([*args, "--gateway", net.gateway]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        mined, seen = lines[-2]["block_height"], lines[-1]["block_height"]
        assert lines[-1]["scheduler"] == net.su and seen >= mined >= 1
        stamped = int(httpx.get(net.su + "/timestamp", timeout=10).json()["block_height"])
        assert stamped >= mined
        mid = sdk.message(pid, tags=[("Action", "Eval")], data=f"return io.open('/data/{data.id}'):read('l')")
        result = sdk.result(mid, pid)
        assert "Error" not in result, result
        assert result["Output"]["data"] == "separate", result
