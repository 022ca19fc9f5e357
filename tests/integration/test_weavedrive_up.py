"""WeaveDrive on the embedded network (``pyao up``): store an item, ``pyao attest`` it, read it from a process."""

from __future__ import annotations

import json
import time

import httpx
import pytest

import pyao
from pyao.cli import main
from pyao.data import DataItem
from pyao.testing.network import running_network

pytestmark = pytest.mark.slow


def test_attest_then_read_on_pyao_up(tmp_path, capsys):
    with running_network(tmp_path, block_seconds=0.5) as net:
        wallet = net.wallet
        data = DataItem.create(b"weights: 0.5 0.25\n", signer=wallet, tags=[("Content-Type", "text/plain")])
        assert httpx.post(net.gateway + "/tx/arweave", content=data.to_bytes(), timeout=60).status_code == 200
        assert main(["attest", data.id, "--wait", "--wallet", str(net.wallet_path), "--gateway", net.gateway]) == 0
        lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
        mined_at = lines[-1]["block_height"]

        with pyao.connect(mu_url=net.mu, cu_url=net.cu, gateway_url=net.gateway, signer=wallet) as sdk:
            tags = [("Extension", "WeaveDrive"), ("Attestor", wallet.address), ("Authority", net.mu_address())]
            pid = sdk.spawn(net.module_id, net.scheduler_address(), tags=tags)
            code = f"local f = io.open('/data/{data.id}') return f:read('l') .. ' / ' .. f:seek('end')"
            deadline, outcomes = time.monotonic() + 60, []
            while time.monotonic() < deadline:
                mid = sdk.message(pid, tags=[("Action", "Eval")], data=code)
                result = sdk.result(mid, pid)
                outcomes.append(result)
                if "Error" not in result:
                    break
                assert "not admissible" in str(result["Error"])  # scheduled before the SU saw the block
                time.sleep(0.5)
            assert outcomes[-1]["Output"]["data"] == "weights: 0.5 0.25 / 18", outcomes[-1]
            assert mined_at >= 1
