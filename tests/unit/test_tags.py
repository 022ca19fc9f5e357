import pytest

from pyao.data.tags import MAX_TAGS, Tag, as_tags, decode_tags, encode_tags
from pyao.errors import ParseError, TagError


def zz(n: int) -> bytes:
    """Avro zigzag varint, written independently of the code under test."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def avro_str(s: bytes) -> bytes:
    return zz(len(s)) + s


def test_round_trip_keeps_order_and_duplicates():
    tags = (Tag("A", "1"), Tag("A", "2"), Tag("ümlaut", "☃"), Tag("Empty-Value", ""))
    assert decode_tags(encode_tags(tags)) == tags


def test_encoding_is_one_block_then_zero():
    assert encode_tags([Tag("a", "bc")]) == zz(1) + avro_str(b"a") + avro_str(b"bc") + b"\x00"


def test_no_tags_encode_to_nothing():
    assert encode_tags([]) == b""
    assert decode_tags(b"") == ()


def test_reads_several_blocks_and_negative_counts():
    block1 = zz(1) + avro_str(b"a") + avro_str(b"1")
    body = avro_str(b"b") + avro_str(b"2") + avro_str(b"c") + avro_str(b"3")
    block2 = zz(-2) + zz(len(body)) + body
    assert decode_tags(block1 + block2 + b"\x00") == (Tag("a", "1"), Tag("b", "2"), Tag("c", "3"))


@pytest.mark.parametrize(
    "tags, message",
    [
        ([Tag("", "x")], "empty"),
        ([Tag("n" * 1025, "x")], "name"),
        ([Tag("n", "v" * 3073)], "value"),
        ([Tag(f"t{i}", "") for i in range(MAX_TAGS + 1)], "tags"),
        ([Tag(f"t{i}", "v" * 1000) for i in range(5)], "bytes"),
    ],
)
def test_limits_on_encode(tags, message):
    with pytest.raises(TagError, match=message):
        encode_tags(tags)


def test_limits_hold_at_the_edges():
    edge = [Tag("n" * 1024, "v" * 3000)]
    assert decode_tags(encode_tags(edge)) == tuple(edge)
    many = [Tag(f"t{i}", "") for i in range(MAX_TAGS)]
    assert len(decode_tags(encode_tags(many))) == MAX_TAGS


@pytest.mark.parametrize(
    "raw, error",
    [
        (zz(1) + avro_str(b"a"), ParseError),  # truncated: no value
        (zz(1) + zz(10) + b"abc", ParseError),  # string runs past the end
        (zz(1) + avro_str(b"a") + avro_str(b"b"), ParseError),  # no terminating block
        (zz(1) + avro_str(b"a") + avro_str(b"b") + b"\x00junk", ParseError),  # trailing bytes
        (zz(1) + zz(-1) + b"\x00", ParseError),  # negative length
        (b"\xff" * 11, ParseError),  # over-long varint
        (zz(1) + avro_str(b"") + avro_str(b"v") + b"\x00", TagError),  # empty name
        (zz(200) + b"\x00", TagError),  # too many tags claimed
        (zz(1) + zz(5000) + b"x", TagError),  # name over the limit
    ],
)
def test_malformed_tag_bytes(raw, error):
    with pytest.raises(error):
        decode_tags(raw)


def test_invalid_utf8_reads_as_replacement_character():
    raw = zz(1) + avro_str(b"a\xff") + avro_str(b"b") + b"\x00"
    assert decode_tags(raw) == (Tag("a\ufffd", "b"),)


def test_as_tags_accepts_common_shapes():
    expected = (Tag("a", "1"), Tag("b", "2"))
    assert as_tags([("a", "1"), ("b", "2")]) == expected
    assert as_tags([{"name": "a", "value": "1"}, {"name": "b", "value": "2"}]) == expected
    assert as_tags({"a": "1", "b": "2"}) == expected
    with pytest.raises(TagError):
        as_tags([("a", 1)])
