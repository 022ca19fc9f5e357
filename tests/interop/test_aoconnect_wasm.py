"""The official ``@permaweb/aoconnect`` spawns, messages and reads a WASM process (our kit's echo
module, wasm64) on ``pyao up``: the module is published to the gateway with its Module-Format tag."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from pyao.data import DataItem, ao
from pyao.testing.network import running_network
from tests.unit._wasm import W64, kit_bytes

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def test_aoconnect_drives_a_wasm_process(node_harness, tmp_path):
    with running_network(tmp_path) as net:
        module = DataItem.create(kit_bytes("echo", W64), signer=net.wallet, tags=ao.module_tags(W64))
        r = httpx.post(net.gateway + "/tx", content=module.to_bytes(), timeout=30)
        assert r.status_code == 200, r.text
        config = {
            "gateway": net.gateway,
            "graphql": net.gateway + "/graphql",
            "mu": net.mu,
            "cu": net.cu,
            "wallet": str(net.wallet_path),
            "module": module.id,
            "scheduler": net.scheduler_address(),
            "mu_address": net.mu_address(),
        }
        done = subprocess.run(
            ["node", "aoconnect-wasm.mjs"], input=json.dumps(config), cwd=node_harness,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-4000:]
        out = json.loads(done.stdout.strip().splitlines()[-1])
        assert out["blocked"] == [] and out["ok"], out.get("error")
        result = out["result"]
        assert result["Output"] == "hello from aoconnect" and "Error" not in result
        (reply,) = result["Messages"]
        assert reply["Target"] == net.wallet.address and reply["Data"] == "hello from aoconnect"
        assert out["dryrun"]["Output"] == "dry"
        outputs = [edge["node"]["Output"] for edge in out["results"]["edges"]]
        assert outputs == ["spawned", "hello from aoconnect"]
