"""llm@1.0 on the real network: a process generates on `pyao up`'s CU, reading a model it may read by
WeaveDrive's rules (``Extension: WeaveDrive``, attested by its ``Attestor``), and a second, separate CU
(`pyao cu`, its own model cache) replays the schedule and answers the same results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

import pyao
from pyao.cli import main
from pyao.data import DataItem
from pyao.devices.tinymodel import write_tiny_model
from pyao.testing.network import running_network
from pyao.testing.postgres import free_ports

pytestmark = pytest.mark.slow

STEPS = (
    'Llama = require("llama") Llama.load("/data/MODEL") print(Llama.setPrompt("the llama king"))',
    "print(Llama.run(12))",
    'Llama.setTemp(0.9) Llama.add(" and the petition") print(Llama.run(12))',
    "print(Llama.generate('grade it', {json_schema = {type = 'object', properties = {grade = {type = 'integer', "
    "enum = {0,1,2,3,4,5}}}, required = {'grade'}}, max_tokens = 40}))",
)


def test_two_cus_give_the_same_generations(tmp_path):
    with running_network(tmp_path) as net:
        model = write_tiny_model(tmp_path / "tiny.gguf", seed=3).read_bytes()
        item = DataItem.create(model, signer=net.wallet, tags=[("Content-Type", "application/octet-stream")])
        httpx.post(f"{net.gateway}/tx/arweave", content=item.to_bytes(), timeout=30).raise_for_status()
        assert main(["attest", item.id, "--wait", "--wallet", str(net.wallet_path), "--gateway", net.gateway]) == 0
        tags = [("Name", "llm-two-cus"), ("Extension", "WeaveDrive"), ("Attestor", net.wallet.address)]
        with pyao.connect(mu_url=net.mu, cu_url=net.cu, gateway_url=net.gateway, signer=net.wallet) as sdk:
            pid = sdk.spawn(net.module_id, net.scheduler_address(), tags=tags)
            ids = [sdk.message(pid, tags=[("Action", "Eval")], data=s.replace("MODEL", item.id)) for s in STEPS]
            first = [sdk.result(m, pid) for m in ids]
        for r in first:
            assert not r.get("Error"), r
        assert '"grade"' in first[-1]["Output"]["data"]

        port = free_ports(1)[0]
        env = dict(os.environ)
        command = [sys.executable, "-m", "pyao.cli", "cu", "--port", str(port), "--data-dir", str(tmp_path / "cu2"),
                   "--gateway-url", net.gateway, "--wallet", str(tmp_path / "cu2.json")]  # fmt: skip
        with open(tmp_path / "cu2.log", "w") as log:
            cu2 = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            second = [_result_from(f"http://127.0.0.1:{port}", m, pid) for m in ids]
        finally:
            cu2.send_signal(signal.SIGINT)
            cu2.wait(timeout=20)
        assert [r["Output"] for r in second] == [r["Output"] for r in first]
        assert [r["GasUsed"] for r in second] == [r["GasUsed"] for r in first]  # token costs included
        assert any((tmp_path / "cu2" / "models").glob("*.gguf"))  # it read the model itself


def _result_from(cu_url: str, message: str, process: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        try:
            r = httpx.get(f"{cu_url}/result/{message}", params={"process-id": process}, timeout=60)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the second CU did not answer: {r.status_code if 'r' in dir() else 'down'}")
        time.sleep(0.3)
