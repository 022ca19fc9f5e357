"""llm@1.0 reading its model from a real pyao gateway (``GET /raw/<id>`` by byte range), and provenance
records uploaded to that gateway and found again with ``pyao provenance``."""

from __future__ import annotations

import json

import httpx
import pytest

from pyao.abc import ProcessContext
from pyao.cli import main
from pyao.config import GatewayConfig
from pyao.data import DataItem, Ed25519Signer, b64url_encode
from pyao.devices import _llm_models
from pyao.devices.llm import LlmDevice
from pyao.devices.rawdrive import GatewayRawDrive
from pyao.errors import NotFound
from pyao.gateway import create_app, open_store
from pyao.provenance import ProvenanceRecorder
from pyao.testing.servers import serve_app
from tests.unit._llm import tiny_model_file
from tests.unit._lua import make_process

SIGNER = Ed25519Signer.from_seed(b"\x09" * 32)
PROC = ProcessContext(id="P" * 43, owner="O" * 43, tags=())


@pytest.fixture
def gateway(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    with serve_app(create_app(store, GatewayConfig(block_seconds=0))) as url:
        yield url


def upload(url: str, data: bytes) -> str:
    item = DataItem.create(data, signer=SIGNER, tags=[("Content-Type", "application/octet-stream")])
    httpx.post(f"{url}/tx/arweave", content=item.to_bytes()).raise_for_status()
    return item.id


def test_model_streamed_from_the_gateway_in_ranges(gateway, tmp_path, monkeypatch):
    model_file = tiny_model_file(tmp_path)
    model_id = upload(gateway, model_file.read_bytes())
    monkeypatch.setattr(_llm_models, "CHUNK", 64 * 1024)  # many ranged reads for a small file
    reads = []
    drive = GatewayRawDrive(gateway)
    real_open = drive.open

    def counting_open(path, process, msg):
        f = real_open(path, process, msg)
        real_read = f.read
        f.read = lambda offset, length: reads.append(length) or real_read(offset, length)
        return f

    drive.open = counting_open
    device = LlmDevice(drive, tmp_path / "cache")
    model = device.models.get(f"/data/{model_id}", PROC, {})
    assert len(reads) > 3 and max(reads) <= 64 * 1024
    assert model.path.read_bytes() == model_file.read_bytes()
    with pytest.raises(NotFound):
        device.models.get("/data/" + b64url_encode(b"\x05" * 32), PROC, {})


def test_generation_recorded_and_found_by_pyao_provenance(gateway, tmp_path, capsys):
    model_id = upload(gateway, tiny_model_file(tmp_path).read_bytes())
    recorder = ProvenanceRecorder(gateway, SIGNER)
    device = LlmDevice(GatewayRawDrive(gateway), tmp_path / "cache", on_generation=recorder)
    p = make_process('Llama = require("llama")', devices={"llm@1.0": device})
    ascii_only = "{grammar = 'root ::= [a-z]{3,12}'}"  # text that survives the trip through Output intact
    r = p.eval(f'Llama.load("/data/{model_id}") print((Llama.generate("a secret prompt", {ascii_only})))')
    assert r.error is None, r.error
    output = r.output["data"]
    recorder.flush()
    recorder.close()
    assert len(recorder.recorded) == 1

    assert main(["provenance", output, "--gateway", gateway, "--json"]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert record["model"] == model_id and record["process"] == p.env["Process"]["Id"]
    assert record["message"] == "msg-0001" and record["recorder"] == SIGNER.address
    assert main(["provenance", output + " (edited)", "--gateway", gateway]) == 1
    assert "no provenance record" in capsys.readouterr().out


def test_recorder_skips_dry_runs_and_replays(gateway):
    from pyao.devices.llm import Generation
    from pyao.provenance import find_records

    recorder = ProvenanceRecorder(gateway, SIGNER)
    gen = Generation("P" * 43, "M" * 43, "/data/" + "m" * 43, "ab" * 32, b"prompt", b"the answer", False)
    recorder(gen)
    recorder(gen)  # the same message replayed (a restart, a rollback)
    recorder(Generation("P" * 43, "D" * 43, gen.model, gen.model_sha256, b"p", b"a dry run", True))
    recorder.flush()
    recorder.close()
    assert len(recorder.recorded) == 1
    restarted = ProvenanceRecorder(gateway, SIGNER)  # a restarted CU replays the message
    restarted(gen)
    restarted.flush()
    restarted.close()
    assert restarted.recorded == []
    [record] = find_records(gateway, b"the answer")
    assert (record.model, record.message, record.process) == ("m" * 43, "M" * 43, "P" * 43)
    assert find_records(gateway, b"a dry run") == []
