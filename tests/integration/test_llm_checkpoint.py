"""llm@1.0 across a CU restart: a CU that checkpoints a process mid-conversation (its model session
in the process state), stops, and is started again generates the same tokens as a CU that replayed
the whole schedule. Real gateway, SU and CUs over HTTP; the model is read through WeaveDrive."""

from __future__ import annotations

import logging

import pytest

from pyao.cli._attest import attestation_items
from pyao.data import DataItem
from pyao.devices.tinymodel import write_tiny_model
from tests._cu import USER, network
from tests.integration.test_weavedrive_integration import mine, wait_su_height

pytestmark = pytest.mark.slow

STEPS = (
    'Llama = require("llama") Llama.load("/data/MODEL") print(Llama.setPrompt("the llama king"))',
    "print(Llama.run(10))",
    'Llama.add(" grants the petition") print(Llama.run(10))',
    "print(Llama.generate('grade it', {json_schema = {type = 'object', properties = {grade = {type = "
    "'integer', enum = {0,1,2,3,4,5}}}, required = {'grade'}}, max_tokens = 40}))",
)


def _outputs(cu, pid, ids):
    results = []
    for mid in ids:
        r = cu.get(f"/result/{mid}", params={"process-id": pid}, timeout=120)
        assert r.status_code == 200, r.text
        body = r.json()
        assert "Error" not in body, body["Error"]
        results.append((body["Output"], body["GasUsed"]))
    return results


def test_a_restarted_cu_continues_a_model_session_from_its_checkpoint(tmp_path, caplog):
    with network(tmp_path) as net:
        model = DataItem.create(write_tiny_model(tmp_path / "tiny.gguf", seed=5).read_bytes(), signer=USER)
        net.upload(model)
        for item in attestation_items(model.id, USER):
            net.upload(item)
        tags = [("Extension", "WeaveDrive"), ("Attestor", USER.address)]
        pid = net.spawn(net.module(b""), tags)
        wait_su_height(net, pid, mine(net))  # the attestation is at or below every step's Block-Height
        send = [net.send(pid, [("Action", "Eval")], s.replace("MODEL", model.id))["id"] for s in STEPS[:2]]
        with net.cu(name="restarted", checkpoint_every=1) as first_life:
            first = _outputs(first_life, pid, send)  # checkpointed with the session open
        ids = send + [net.send(pid, [("Action", "Eval")], s)["id"] for s in STEPS[2:]]
        with caplog.at_level(logging.INFO, logger="pyao.cu"), net.cu(name="restarted", checkpoint_every=1) as again:
            resumed = _outputs(again, pid, ids)
        with net.cu(name="whole", checkpoint_every=0) as whole:
            expected = _outputs(whole, pid, ids)
        assert '"grade"' in str(expected[-1][0])
        assert first == expected[:2] and resumed == expected
        assert any("restored from checkpoint" in r.getMessage() for r in caplog.records)
