"""The other direction: items and bundles signed by pyao, verified by @dha-team/arbundles."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest

from pyao.data import Bundle, DataItem, ao, b64url_encode

pytestmark = pytest.mark.interop

PID = b64url_encode(bytes(range(32)))


def _cases(signer):
    yield DataItem.create(b"", signer=signer)
    yield DataItem.create("hello ☃", signer=signer, tags=[("Content-Type", "text/plain")])
    yield DataItem.create(b"\x00\xff" * 700, signer=signer, target=PID, anchor="0" * 32)
    yield DataItem.create(b" ", signer=signer, target=PID, tags=ao.message_tags([("Action", "Eval")]))
    yield DataItem.create(b"x", signer=signer, tags=[(f"T{i}", "v") for i in range(128)])
    yield DataItem.create(b"x", signer=signer, tags=[("Dup", "1"), ("Dup", "2"), ("Empty", "")])


def _run_arbundles(harness, tmp_path, items, bundles):
    request = tmp_path / "request.json"
    request.write_text(
        json.dumps(
            {
                "items": [base64.b64encode(b).decode() for b in items],
                "bundles": [base64.b64encode(b).decode() for b in bundles],
            }
        )
    )
    out = subprocess.run(
        ["node", str(harness / "verify-items.mjs"), str(request)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(out.stdout)


def test_arbundles_verifies_what_pyao_signs(node_harness, tmp_path, signers):
    items = [item for signer in signers.values() for item in _cases(signer)]
    tampered = []
    for item in items[::3]:
        raw = bytearray(item.to_bytes())
        raw[-1] ^= 0x01 if item.data else 0
        raw[2 + len(item.signature) // 2] ^= 0x01
        tampered.append(bytes(raw))
    mixed = Bundle.of(items[::5])
    bundle_item = mixed.to_item(signers[1], tags=ao.message_tags())
    result = _run_arbundles(
        node_harness,
        tmp_path,
        [i.to_bytes() for i in items] + [bundle_item.to_bytes()] + tampered,
        [mixed.to_bytes(), Bundle.of([]).to_bytes()],
    )
    checked = result["items"][: len(items) + 1]
    for item, seen in zip([*items, bundle_item], checked, strict=False):
        assert seen["error"] is None, seen
        assert seen["valid"] is True, (item, seen)
        assert seen["id"] == item.id
        assert seen["signature_type"] == item.signature_type
        assert seen["tags"] == [{"name": t.name, "value": t.value} for t in item.tags]
        assert base64.b64decode(seen["data_b64"]) == item.data
        assert seen["signature_data_hex"] == item.signature_data().hex()
    assert all(seen["valid"] is False for seen in result["items"][len(items) + 1 :])
    bundle_seen, empty_seen = result["bundles"]
    assert bundle_seen["valid"] is True and bundle_seen["item_ids"] == mixed.ids
    assert empty_seen["valid"] is True and empty_seen["item_ids"] == []
