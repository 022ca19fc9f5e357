"""A WASM process (kit/wasm/llm.c) uses llm@1.0 through the ``pyao.device_call`` import on `pyao up`'s
CU (its configured devices, in its VM worker processes), reading a model by WeaveDrive's rules; a
second, separate CU replays the schedule and answers the same results, token costs included; each
generation gets a provenance record."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

import pyao
from pyao.cli import main
from pyao.data import DataItem, ao
from pyao.devices.tinymodel import write_tiny_model
from pyao.provenance import find_records
from pyao.testing.network import running_network
from pyao.testing.postgres import free_ports
from tests.integration.test_llm_two_cus import _result_from
from tests.unit._wasm import W32_METERED, kit_bytes

pytestmark = pytest.mark.slow

SCHEMA = {"type": "object", "properties": {"grade": {"type": "integer", "enum": [0, 1, 2, 3, 4, 5]}},
          "required": ["grade"]}  # fmt: skip


def _upload(net, data: bytes, tags) -> str:
    item = DataItem.create(data, signer=net.wallet, tags=tags)
    httpx.post(f"{net.gateway}/tx/arweave", content=item.to_bytes(), timeout=30).raise_for_status()
    return item.id


def test_wasm_process_generates_on_the_cu_and_a_second_cu_agrees(tmp_path):
    with running_network(tmp_path) as net:
        model = _upload(net, write_tiny_model(tmp_path / "tiny.gguf", seed=4).read_bytes(),
                        [("Content-Type", "application/octet-stream")])  # fmt: skip
        unattested = _upload(net, b"nobody attested this", [("Content-Type", "text/plain")])
        assert main(["attest", model, "--wait", "--wallet", str(net.wallet_path), "--gateway", net.gateway]) == 0
        module = _upload(net, kit_bytes("llm", W32_METERED),
                         ao.module_tags(W32_METERED, memory_limit="64-mb", compute_limit=10**9))  # fmt: skip
        steps = [
            ([("Action", "Load")], f"/data/{model}"),
            ([("Action", "Prompt")], "the llama king"),
            ([("Action", "Run"), ("Tokens", "8")], ""),
            ([("Action", "Generate"), ("Options", json.dumps({"json_schema": SCHEMA, "max_tokens": 40}))], "grade"),
            ([("Action", "Load")], f"/data/{unattested}"),
        ]
        tags = [("Name", "wasm-llm"), ("Extension", "WeaveDrive"), ("Attestor", net.wallet.address)]
        with pyao.connect(mu_url=net.mu, cu_url=net.cu, gateway_url=net.gateway, signer=net.wallet) as sdk:
            pid = sdk.spawn(module, net.scheduler_address(), tags=tags)
            ids = [sdk.message(pid, tags=t, data=d) for t, d in steps]
            first = [sdk.result(m, pid) for m in ids]
        for r in first[:-1]:
            assert not r.get("Error"), r
            assert r["Output"]["ok"] is True
        answer = first[3]["Output"]["values"][0]
        assert json.loads(answer)["grade"] in range(6)
        assert first[3]["GasUsed"] > first[1]["GasUsed"] > 0  # decoded tokens are charged as fuel
        assert "not admissible" in first[-1]["Error"]  # WeaveDrive's rules hold for WASM processes too

        port = free_ports(1)[0]
        command = [sys.executable, "-m", "pyao.cli", "cu", "--port", str(port), "--data-dir", str(tmp_path / "cu2"),
                   "--gateway-url", net.gateway, "--wallet", str(tmp_path / "cu2.json")]  # fmt: skip
        with open(tmp_path / "cu2.log", "w") as log:
            cu2 = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            second = [_result_from(f"http://127.0.0.1:{port}", m, pid) for m in ids]
        finally:
            cu2.send_signal(signal.SIGINT)
            cu2.wait(timeout=20)
        assert [(r["Output"], r["GasUsed"], r.get("Error")) for r in second] == [
            (r["Output"], r["GasUsed"], r.get("Error")) for r in first
        ]

        deadline = time.monotonic() + 60  # the CU's workers upload provenance records after the evaluation
        while not (records := find_records(net.gateway, answer.encode())) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert any(r.process == pid and r.message == ids[3] and r.model == model for r in records), records
