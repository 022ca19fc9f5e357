"""``pyao demo llama-fed`` end to end on the embedded network, on a generated random-weight model, with the
CU's own configured devices: the King reads its model through WeaveDrive (attested by the demo's wallet)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow
PAYOUT = {0: 0, 1: 1, 2: 5, 3: 10, 4: 20, 5: 100}


def test_llama_fed_demo(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pyao.cli", "demo", "llama-fed", "--data-dir", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "RANDOM-WEIGHT" in proc.stdout  # says clearly that the grades are noise
    summary = json.loads(proc.stdout[proc.stdout.index("\n{\n") + 1 :])  # the JSON summary comes last
    citizens = summary["citizens"]
    granted = {g["to"]: g for g in summary["granted"]}
    assert set(granted) == {citizens["A"], citizens["B"]}  # A's second petition that day was refused
    [refused] = summary["refused"]
    assert refused["to"] == citizens["A"] and "per day" in refused["reason"]
    for who in ("A", "B"):
        g = granted[citizens[who]]
        assert json.loads(g["answer"])["grade"] == g["grade"] in PAYOUT
        assert int(g["minted"]) == PAYOUT[g["grade"]] * 10**12 == int(summary["balances"][who])
        assert summary["provenance"][g["answer"]], "each of the King's answers has a provenance record"

    # the model came through the CU's own weavedrive@1.0: an item nobody attested is refused to the King,
    # and the CU's llm@1.0 (built in its VM workers) cached the attested model under the CU's data dir
    assert "not admissible" in summary["unattested_refused"], summary["unattested_refused"]
    cached = list((tmp_path / "net" / "cu" / "models").glob("*.gguf"))
    assert cached, "the CU's llm@1.0 device read the model"
    for g in summary["granted"]:
        [record] = summary["provenance"][g["answer"]]
        assert record["model"] == summary["model"] and record["process"] == summary["processes"]["king"]
