import pytest

from pyao.data import Bundle, DataItem, b64url_decode, b64url_encode, decode_id, is_id
from pyao.data.bundle import is_bundle
from pyao.errors import DataError, ParseError


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\xff\xfe", bytes(range(32))])
def test_b64url_round_trip(raw):
    assert b64url_decode(b64url_encode(raw)) == raw


@pytest.mark.parametrize("text", ["a+b/", "ab c", "é", "a"])
def test_b64url_refuses_garbage(text):
    with pytest.raises(ParseError):
        b64url_decode(text)


def test_ids_are_canonical():
    good = b64url_encode(bytes(range(32)))
    assert decode_id(good) == bytes(range(32)) and is_id(good)
    assert not is_id(good[:-1] + "B")  # same bytes, non-canonical trailing bits
    assert not is_id("x" * 42) and not is_id(None)


def test_bundle_round_trip_and_item_wrapping(signers):
    items = [DataItem.create(f"item {t}", signer=s) for t, s in signers.items()]
    bundle = Bundle.of(items)
    raw = bundle.to_bytes()
    assert int.from_bytes(raw[:32], "little") == 4
    assert Bundle.from_bytes(raw, verify=True).ids == [i.id for i in items]
    wrapper = bundle.to_item(signers[2], tags=[("Extra", "1")])
    assert is_bundle(wrapper) and wrapper.tags[0].name == "Bundle-Format"
    assert Bundle.from_item(DataItem.from_bytes(wrapper.to_bytes()), verify=True) == bundle
    with pytest.raises(DataError, match="not tagged"):
        Bundle.from_item(items[0])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda raw: raw[:20], "shorter"),
        (lambda raw: (10**30).to_bytes(32, "little") + raw[32:], "claims"),
        (lambda raw: raw + b"!", "trailing"),
        (lambda raw: raw[:32] + (2**200).to_bytes(32, "little") + raw[64:], "runs past"),
    ],
)
def test_malformed_bundles(signers, mutate, message):
    raw = Bundle.of([DataItem.create(b"x", signer=signers[2])]).to_bytes()
    with pytest.raises(ParseError, match=message):
        Bundle.from_bytes(mutate(raw))
