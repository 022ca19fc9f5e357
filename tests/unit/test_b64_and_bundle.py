import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


_TAG_TEXT = st.sampled_from(["Bundle-Format", "Bundle-Version", "binary", "2.0.0", "Bundle-Formats", "x", "é"])


@settings(max_examples=200, deadline=None)
@given(tags=st.lists(st.tuples(_TAG_TEXT, _TAG_TEXT), max_size=5))
def test_is_bundle_is_exactly_the_two_tags(signers, tags):
    """``is_bundle`` looks for the tag name's bytes first: that shortcut never changes its answer."""
    item = DataItem.create(b"", signer=signers[2], tags=tags)
    parsed = DataItem.from_bytes(item.to_bytes())
    expected = parsed.tag("Bundle-Format") == "binary" and parsed.tag("Bundle-Version") == "2.0.0"
    assert is_bundle(parsed) is expected
