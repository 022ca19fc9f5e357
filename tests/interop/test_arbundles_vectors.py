"""Items, bundles and deep hashes made by @dha-team/arbundles 1.0.3, checked by pyao."""

from __future__ import annotations

import base64
from functools import cache

import pytest

from pyao.data import (
    Bundle,
    DataItem,
    Ed25519Signer,
    EthereumSigner,
    SolanaSigner,
    Wallet,
    b64url_decode,
    deep_hash,
)
from pyao.errors import DataError, ParseError

from ._vectors import deep_hash_input, load, raw

ITEMS = load("items.json")
GOOD = [v for v in ITEMS if v["verified"]]
BAD = [v for v in ITEMS if not v["verified"]]
KEYS = load("keys.json")


@cache
def _signers():
    return {
        1: Wallet.from_jwk(KEYS["arweave"]["jwk"]),
        2: Ed25519Signer.from_seed(bytes.fromhex(KEYS["ed25519"]["seed_hex"])),
        3: EthereumSigner.from_hex(KEYS["ethereum"]["private_key_hex"]),
        4: SolanaSigner.from_seed(bytes.fromhex(KEYS["solana"]["seed_hex"])),
    }


def test_the_vectors_cover_every_signature_type_and_tampering():
    assert {v["signature_type"] for v in GOOD} >= {1, 2, 3, 4}
    assert len(GOOD) >= 56 and len(BAD) >= 20


@pytest.mark.parametrize("vector", GOOD, ids=[v["name"] for v in GOOD])
def test_reference_item_parses_verifies_and_reserialises(vector):
    data = raw(vector)
    item = DataItem.from_bytes(data, verify=True)
    assert item.id == vector["id"]
    assert item.signature_type == vector["signature_type"]
    assert item.signature == b64url_decode(vector["signature"])
    assert item.owner == b64url_decode(vector["owner"])
    assert item.target_id == vector["target"]
    assert item.anchor_text == vector["anchor"]
    assert [{"name": t.name, "value": t.value} for t in item.tags] == vector["tags"]
    assert item.data == base64.b64decode(vector["data_b64"])
    assert item.signature_data().hex() == vector["signature_data_hex"]
    if vector.get("owner_address"):
        assert item.owner_address == vector["owner_address"]
    assert item.to_bytes() == data


@pytest.mark.parametrize("vector", [v for v in GOOD if v["signature_type"] in (2, 3, 4)], ids=lambda v: v["name"])
def test_pyao_signs_the_same_bytes_as_arbundles(vector):
    """Ed25519, Ethereum (RFC 6979) and Solana signatures are deterministic: same input, same bytes."""
    reference = DataItem.from_bytes(raw(vector))
    ours = DataItem.create(
        reference.data,
        signer=_signers()[vector["signature_type"]],
        tags=reference.tags,
        target=reference.target,
        anchor=reference.anchor,
    )
    assert ours.to_bytes() == raw(vector)
    assert ours.id == vector["id"]


def test_pyao_loads_the_arweave_jwk_to_the_same_address():
    wallet = _signers()[1]
    assert wallet.address == KEYS["arweave"]["address"]
    assert wallet.to_jwk()["n"] == KEYS["arweave"]["jwk"]["n"]
    assert _signers()[3].address == KEYS["ethereum"]["address"]


@pytest.mark.parametrize("vector", BAD, ids=[v["name"] for v in BAD])
def test_reference_rejections_are_rejections(vector):
    try:
        item = DataItem.from_bytes(raw(vector))
    except DataError:
        return
    assert not item.verify()


def test_rsa_vectors_use_the_maximum_salt_and_still_verify():
    salts = {v["pss_salt_length"] for v in GOOD if v["signature_type"] == 1 and v.get("pss_salt_length")}
    assert salts == {478}


BUNDLES = load("bundles.json")


@pytest.mark.parametrize("vector", BUNDLES, ids=[v["name"] for v in BUNDLES])
def test_reference_bundles(vector):
    data = raw(vector)
    if vector["name"] == "bundle-wrong-header-id":
        # arbundles' Bundle.verify ignores header ids; pyao refuses a header that lies.
        with pytest.raises(ParseError, match="header says"):
            Bundle.from_bytes(data)
        return
    bundle = Bundle.from_bytes(data)
    assert bundle.ids == vector["item_ids"]
    assert bundle.verify() == vector["verified"]
    assert bundle.to_bytes() == data


def test_bundle_as_item():
    vector = next(v for v in ITEMS if v["name"] == "bundle-as-item")
    item = DataItem.from_bytes(raw(vector), verify=True)
    assert Bundle.from_item(item, verify=True).items


DEEP = load("deephash.json")


@pytest.mark.parametrize("vector", DEEP, ids=[v["name"] for v in DEEP])
def test_deep_hash_vectors(vector):
    assert deep_hash(deep_hash_input(vector["input"])).hex() == vector["hash_hex"]


SU = load("su_items.json")


@pytest.mark.parametrize("vector", SU, ids=[v["name"] for v in SU])
def test_items_produced_by_the_official_su_verify(vector):
    item = DataItem.from_bytes(raw(vector), verify=True)
    assert vector["verified"]
    assert item.id == vector["id"]
    assert item.owner_address == vector["owner_address"]
    assert item.to_bytes() == raw(vector)


def test_the_su_message_vector_has_the_id_the_official_su_test_expects():
    item = DataItem.from_bytes(raw(SU[0]), verify=True)
    assert item.id == "6oYAxVAnH8yKsZKpMgHSbRv7uVWey68PAqYuSXeZBbg"
    assert item.owner_address == "4QKhXnyl1z3HEPprMKfTeXrWPRuQjK6O99k5SFKGuck"
