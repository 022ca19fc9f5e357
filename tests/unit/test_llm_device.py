"""llm@1.0 on a generated tiny GGUF: loading, determinism, checkpoints, constrained decoding, budgets, bad input."""

from __future__ import annotations

import json

import pytest

from pyao.abc import ProcessContext
from pyao.devices._llm_session import Session
from pyao.devices.llm import LlmDevice, token_cost
from pyao.devices.rawdrive import DirectoryDrive
from pyao.errors import DeviceAccessDenied, DeviceError
from tests.unit._llm import MODEL_ID, MODEL_PATH, device_for, llama_process, tiny_model_file

PROC = ProcessContext(id="P" * 43, owner="O" * 43, tags=())
MSG = {"Id": "x" * 43, "Hash-Chain": "hc"}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tiny_model_file(tmp_path_factory.mktemp("llm"))


@pytest.fixture
def device(tmp_path, model_file):
    return device_for(tmp_path, model_file)


def value(p, expr: str) -> str:
    r = p.eval(f"print({expr})")
    assert r.error is None, r.error
    return r.output["data"]


def test_load_and_generate_through_the_drive_path(device):
    p = llama_process(device)
    info = json.loads(value(p, f'require("json").encode(Llama.load("{MODEL_PATH}"))'))
    assert info["model"] == MODEL_PATH and info["vocab"] > 300 and info["parameters"] > 10_000
    out = value(p, 'Llama.generate("the llama king", {max_tokens = 12})')
    assert isinstance(out, str)
    assert json.loads(value(p, 'require("json").encode(Llama.info())'))["tokens"] > 0


def test_materialised_once_content_addressed_and_shared(tmp_path, model_file):
    device = device_for(tmp_path, model_file)
    a = device.models.get(MODEL_PATH, PROC, MSG)
    b = device.models.get(MODEL_PATH, PROC, MSG)
    assert a is b  # one loaded model shared by every process using the file
    cached = list((tmp_path / "model-cache").glob("*.gguf"))
    assert [c.name for c in cached] == [f"{a.sha256}.gguf"]
    assert cached[0].read_bytes() == model_file.read_bytes()


SCRIPT = """
Handlers.add("start", function(m) return m.Action == "Start" end, function(m)
  Llama.load("MODEL")
  Llama.setPrompt(m.Data)
  Out = Llama.run(8)
end)
Handlers.add("more", function(m) return m.Action == "More" end, function(m)
  Llama.add(m.Data)
  Out = Out .. "|" .. Llama.run(6)
end)
""".replace("MODEL", MODEL_PATH)


def test_same_tokens_on_two_instances_and_after_restore(tmp_path, model_file):
    a = llama_process(device_for(tmp_path / "a", model_file), SCRIPT, compact_every=4)
    b = llama_process(device_for(tmp_path / "b", model_file), SCRIPT, compact_every=4)
    for p in (a, b):
        assert p.send("a petition for grass", Action="Start").error is None
    snap = a.instance.snapshot()
    for p in (a, b):
        assert p.send(" and more grass", Action="More").error is None
    out_a, out_b = value(a, "Out"), value(b, "Out")
    assert out_a == out_b and "|" in out_a

    # a third unit restores the checkpoint (KV cache rebuilt from the session record) and continues
    c = llama_process(device_for(tmp_path / "c", model_file), SCRIPT, compact_every=4)
    c.instance.restore(snap)
    c.booted, c.nonce = True, 1  # the snapshot was taken after message 1
    assert c.send(" and more grass", Action="More").error is None
    assert value(c, "Out") == out_a


def test_session_survives_a_serialised_base(tmp_path, model_file):
    """compact_every=1: the state is a serialised base each message, the device state inside it."""
    p = llama_process(device_for(tmp_path, model_file), SCRIPT, compact_every=1)
    assert p.send("hello", Action="Start").error is None
    q = llama_process(device_for(tmp_path / "q", model_file), SCRIPT, compact_every=1)
    q.instance.restore(p.instance.snapshot())
    q.booted, q.nonce = True, p.nonce
    p.send(" world", Action="More")
    q.send(" world", Action="More")
    assert value(p, "Out") == value(q, "Out")


def test_failed_message_rolls_the_session_back(tmp_path, model_file):
    p = llama_process(device_for(tmp_path / "p", model_file), compact_every=3)
    fresh = llama_process(device_for(tmp_path / "fresh", model_file))
    for q in (p, fresh):
        value(q, f'Llama.load("{MODEL_PATH}") and Llama.setPrompt("grass")')
    before = value(p, "Llama.info().tokens")
    r = p.eval('Llama.add(" more words here") error("boom")')
    assert r.error and "boom" in r.error
    assert value(p, "Llama.info().tokens") == before
    # the context that decoded the failed message's tokens is not reused as if they were not there
    assert value(p, "Llama.run(6)") == value(fresh, "Llama.run(6)")


def test_seeded_sampling_repeats_and_greedy_ignores_seed(device):
    p = llama_process(device)
    value(p, f'Llama.load("{MODEL_PATH}")')
    gen = 'Llama.generate("grass", {max_tokens = 16, temperature = 1.5, seed = %d})'
    assert value(p, gen % 7) == value(p, gen % 7)
    outs = {value(p, gen % s) for s in range(6)}
    assert len(outs) > 1  # sampling really samples
    greedy = 'Llama.generate("grass", {max_tokens = 16, temperature = 0, seed = %d})'
    assert value(p, greedy % 1) == value(p, greedy % 2)


SCHEMA = (
    '{type = "object", properties = {grade = {type = "integer", enum = {0,1,2,3,4,5}}, '
    'reason = {type = "string", maxLength = 40}}, required = {"grade", "reason"}}'
)


@pytest.mark.parametrize("temperature", [0, 1.0])
def test_json_schema_output_always_parses(device, temperature):
    p = llama_process(device)
    value(p, f'Llama.load("{MODEL_PATH}")')
    for seed in range(5):
        r = p.eval(
            f'local out, meta = Llama.generate("petition {seed}: more grass", '
            f"{{json_schema = {SCHEMA}, max_tokens = 120, temperature = {temperature}, seed = {seed}}}) "
            'print(require("json").encode({out = out, meta = meta}))'
        )
        assert r.error is None, r.error
        res = json.loads(r.output["data"])
        assert res["meta"]["ended"] is True
        verdict = json.loads(res["out"])
        assert verdict["grade"] in range(6) and isinstance(verdict["reason"], str)


def test_gbnf_grammar(device):
    p = llama_process(device)
    value(p, f'Llama.load("{MODEL_PATH}")')
    for seed in range(4):
        gen = f'Llama.generate("yes or no?", {{grammar = \'root ::= "yes" | "no"\', temperature = 1, seed = {seed}}})'
        assert value(p, f"({gen})") in ("yes", "no")


def test_tokens_count_against_the_compute_limit(tmp_path, model_file):
    device = device_for(tmp_path, model_file)
    cost = token_cost(device.models.get(MODEL_PATH, PROC, MSG))
    limit = 200_000
    p = llama_process(device, compute=limit)
    value(p, f'Llama.load("{MODEL_PATH}") and Llama.setPrompt("grass")')
    before = value(p, "Llama.info().tokens")
    r = p.eval(f"Llama.run({limit // cost + 10})")
    assert r.error and "compute limit exceeded" in r.error
    assert value(p, "Llama.info().tokens") == before  # nothing of the failed message stays
    ok = p.eval("Llama.run(20)")
    assert ok.error is None and ok.gas_used >= 20 * cost  # the tokens are in the message's gas


def test_bad_requests_are_errors_in_the_process(tmp_path, model_file):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model at all" * 100)
    device = LlmDevice(DirectoryDrive({MODEL_ID: model_file, "j" * 43: junk}), tmp_path / "cache")
    p = llama_process(device)
    cases = {
        "Llama.next()": "no model loaded",
        'Llama.load("/etc/passwd")': "only /data/<id>",
        f'Llama.load("/data/{"j" * 43}")': "not a GGUF",
        f'Llama.load("/data/{"z" * 43}")': "no such item",
        'require("devices").call("llm@1.0", "format_disk")': "unknown llm@1.0 operation",
        'require("devices").call("gpu@9.9", "x")': "not available",
    }
    for code, expected in cases.items():
        r = p.eval(code)
        assert r.error and expected in r.error, (code, r.error)
    value(p, f'Llama.load("{MODEL_PATH}")')
    for code, expected in {
        'Llama.generate("x", {grammar = "root ::= oops ("})': "grammar does not parse",
        'Llama.generate("x", {grammar = "root ::= \\"a\\"", json_schema = {}})': "not both",
        'Llama.generate("x", {max_tokens = -1})': "max_tokens",
        "Llama.setTemp(-3)": "temperature",
        "Llama.next()": "no prompt",
    }.items():
        r = p.eval(code)
        assert r.error and expected in r.error, (code, r.error)


def test_stop_clears_the_session(device):
    p = llama_process(device)
    value(p, f'Llama.load("{MODEL_PATH}") and Llama.setPrompt("x")')
    value(p, "Llama.stop()")
    assert value(p, "Llama.info()") == "nil"


def test_session_record_roundtrip_and_damage():
    s = Session(model=MODEL_PATH, sha256="ab" * 32, temperature=0.5, seed=9, chunks=((1, 2, 3), (4,)))
    assert Session.decode(s.encode()) == s
    assert s.n_past == 4 and s.tokens() == [1, 2, 3, 4]
    for bad in (b"", b"junk", s.encode()[:-2], s.encode() + b"\x00\x00\x00\x00\x01"):
        with pytest.raises(DeviceError):
            Session.decode(bad)


def test_drive_refuses_other_paths(tmp_path, model_file):
    drive = DirectoryDrive({MODEL_ID: model_file})
    with pytest.raises(DeviceAccessDenied):
        drive.open("/tx/" + MODEL_ID, PROC, MSG)


@pytest.mark.parametrize("damage", ["truncated", "header only", "flipped bytes"])
def test_damaged_models_are_errors_not_crashes(tmp_path, model_file, damage):
    data = model_file.read_bytes()
    bad = {
        "truncated": data[: len(data) // 2],
        "header only": data[:200],
        "flipped bytes": data[:100] + bytes(b ^ 0xFF for b in data[100:300]) + data[300:],
    }[damage]
    (tmp_path / "bad.gguf").write_bytes(bad)
    p = llama_process(LlmDevice(DirectoryDrive({MODEL_ID: tmp_path / "bad.gguf"}), tmp_path / "cache"))
    r = p.eval(f'Llama.load("{MODEL_PATH}")')
    assert r.error and "cannot load model" in r.error


def test_generate_without_options(device):
    p = llama_process(device)
    r = p.eval(f'Llama.load("{MODEL_PATH}") local out, meta = Llama.generate("grass") print(meta.tokens)')
    assert r.error is None, r.error
    assert 0 <= int(r.output["data"]) <= 128  # the default max_tokens


def test_context_size_follows_a_model_trained_on_less(tmp_path):
    from pyao.devices.tinymodel import TinyShape, write_tiny_model

    small = write_tiny_model(tmp_path / "ctx64.gguf", shape=TinyShape(n_ctx_train=64))
    p = llama_process(device_for(tmp_path, small))
    assert value(p, f'Llama.load("{MODEL_PATH}").n_ctx') == "64"
    value(p, 'Llama.setPrompt("grass")')
    r = p.eval("Llama.run(100)")
    assert r.error and "the context is full (64 tokens)" in r.error


def test_generate_is_seeded_from_the_asking_message(device):
    from tests.unit._lua import message

    p = llama_process(device)
    value(p, f'Llama.load("{MODEL_PATH}")')
    gen = "print((Llama.generate('grass', {max_tokens = 16, temperature = 2})))"
    action = [{"name": "Action", "value": "Eval"}]

    def with_chain(chain: str, nonce: int) -> str:
        msg = {**message(f"msg-{nonce}", gen, action, nonce=nonce), "Hash-Chain": chain}
        r = p.instance.handle(msg, p.env)
        assert r.error is None, r.error
        return r.output["data"]

    outs = [with_chain(chain, 50 + i) for i, chain in enumerate(["c1", "c2", "c3", "c4", "c1"])]
    assert outs[0] == outs[4]  # the same message seed, the same draw
    assert len(set(outs[:4])) > 1  # other messages, other draws
