"""Hostile bytes: every parser ends in a value or a typed DataError, never anything else.

At least 10,000 cases run in CI (the item test alone runs 10,000). A mutated item
that still parses must never verify.
"""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyao.data import Bundle, DataItem, Ed25519Signer, EthereumSigner, SolanaSigner, Wallet, b64url_encode
from pyao.data.item import _parse
from pyao.data.signing import SCHEMES
from pyao.data.tags import decode_tags
from pyao.errors import DataError

pytestmark = pytest.mark.slow

_SIGNERS = [
    Wallet.generate(),
    Ed25519Signer.from_seed(b"\x01" * 32),
    EthereumSigner.from_hex("22" * 32),
    SolanaSigner.from_seed(b"\x02" * 32),
]
_PID = b64url_encode(b"\x07" * 32)

tag_text = st.text(min_size=1, max_size=40)
tags = st.lists(st.tuples(tag_text, st.text(max_size=60)), max_size=8)


@st.composite
def signed_items(draw):
    signer = draw(st.sampled_from(_SIGNERS))
    return DataItem.create(
        draw(st.binary(max_size=300)),
        signer=signer,
        tags=draw(tags),
        target=draw(st.sampled_from(["", _PID])),
        anchor=draw(st.sampled_from(["", "a" * 32])),
    ).to_bytes()


@st.composite
def mutations(draw, source):
    raw = bytearray(draw(source))
    op = draw(st.sampled_from(["truncate", "flip", "splice", "append", "header", "random"]))
    if op == "truncate":
        del raw[draw(st.integers(0, max(0, len(raw) - 1))) :]
    elif op == "flip":
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] ^= draw(st.integers(1, 255))
    elif op == "splice":
        at = draw(st.integers(0, len(raw)))
        raw[at:at] = draw(st.binary(min_size=1, max_size=40))
    elif op == "append":
        raw += draw(st.binary(min_size=1, max_size=40))
    elif op == "header":
        # Lie in the tag header: huge counts and lengths must not allocate or hang.
        sig_type = struct.unpack_from("<H", raw)[0]
        lengths = {1: 1024, 2: 96, 3: 130, 4: 96}[sig_type]
        at = 2 + lengths
        at += 33 if raw[at] == 1 else 1
        at += 33 if raw[at] == 1 else 1
        value = draw(st.sampled_from([2**64 - 1, 2**63, 4097, 129, 0, 1]))
        struct.pack_into("<Q", raw, at + draw(st.sampled_from([0, 8])), value)
    else:
        raw = bytearray(draw(st.binary(max_size=600)))
    return bytes(raw)


def _check(original: bytes | None, raw: bytes) -> None:
    try:
        item = DataItem.from_bytes(raw)
    except DataError:
        return
    assert item.to_bytes() == raw
    if raw != original:
        assert not item.verify(), "a mutated item was reported valid"


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_items_never_crash_or_verify(data):
    original = data.draw(signed_items())
    raw = data.draw(mutations(st.just(original)))
    _check(original, raw)


@settings(max_examples=500, deadline=None)
@given(signed_items())
def test_unmutated_items_round_trip_and_verify(raw):
    item = DataItem.from_bytes(raw, verify=True)
    assert item.to_bytes() == raw


@settings(max_examples=300, deadline=None)
@given(signed_items())
def test_an_item_remembered_when_signed_is_what_a_parse_gives_and_really_verifies(raw):
    """Items the built-in signers sign are remembered parsed and verified (``remember_signed``):
    the remembered item must be the parse of its bytes, and its signature must check for real."""
    remembered, fresh = DataItem.from_bytes(raw), _parse(raw)
    assert remembered == fresh and remembered.known_valid and not fresh.known_valid
    assert SCHEMES[fresh.signature_type].verify(fresh.owner, fresh.signature_data(), fresh.signature)


@settings(max_examples=2_000, deadline=None)
@given(st.binary(max_size=5000))
def test_tag_decoder_on_arbitrary_bytes(raw):
    with contextlib.suppress(DataError):
        decode_tags(raw)


@settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_bundles(data):
    items = [DataItem.from_bytes(data.draw(signed_items())) for _ in range(data.draw(st.integers(0, 3)))]
    original = Bundle.of(items).to_bytes()
    raw = bytearray(original)
    op = data.draw(st.sampled_from(["truncate", "flip", "count", "size"]))
    if op == "truncate" and raw:
        del raw[data.draw(st.integers(0, len(raw) - 1)) :]
    elif op == "flip" and raw:
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= 0x5A
    elif op == "count":
        raw[:32] = data.draw(st.integers(0, 2**256 - 1)).to_bytes(32, "little")
    elif op == "size" and items:
        raw[32:64] = data.draw(st.integers(0, 2**256 - 1)).to_bytes(32, "little")
    try:
        bundle = Bundle.from_bytes(bytes(raw))
    except DataError:
        return
    assert bundle.to_bytes() == bytes(raw)
    if bytes(raw) != original:
        assert not bundle.verify(), "a mutated bundle was reported valid"
