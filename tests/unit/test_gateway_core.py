"""The gateway's pure core: upload verification and unbundling, Range, headers, JSON shapes."""

from __future__ import annotations

import dataclasses

import pytest

from pyao.data import Bundle, DataItem, Tag
from pyao.errors import DataError, SignatureError
from pyao.gateway import _core
from pyao.gateway._core import Unsatisfiable, parse_range, prepare_upload, tag_headers
from pyao.gateway._model import ItemRecord


def _item(signer, data=b"data", tags=(("Type", "Message"),), **kw) -> DataItem:
    return DataItem.create(data, signer=signer, tags=list(tags), **kw)


def test_single_item_upload(signer):
    item = _item(signer, b"hello", anchor=b"a" * 32, target="t" * 42 + "A")
    upload = prepare_upload(item.to_bytes())
    assert [n.record.id for n in upload.items] == [item.id]
    new = upload.items[0]
    assert upload.raw[new.data_offset : new.data_offset + new.record.data_size] == b"hello"
    assert new.record.owner_address == item.owner_address
    assert new.record.target == "t" * 42 + "A" and new.record.bundled_in is None


def test_nested_bundles_locate_every_items_data(signers):
    ed, rsa, eth, sol = signers[2], signers[1], signers[3], signers[4]
    leaves = [_item(s, f"leaf {i}".encode() * (i + 1)) for i, s in enumerate([ed, rsa, eth, sol])]
    inner = Bundle.of(leaves[:2]).to_item(ed, tags=[("Name", "inner")])
    outer = Bundle.of([inner, leaves[2], leaves[3], leaves[0]]).to_item(rsa)  # leaves[0] twice: stored once
    upload = prepare_upload(outer.to_bytes())
    by_id = {n.record.id: n for n in upload.items}
    assert list(by_id) == [outer.id, inner.id, leaves[0].id, leaves[1].id, leaves[2].id, leaves[3].id]
    for item in [outer, inner, *leaves]:
        new = by_id[item.id]
        assert upload.raw[new.data_offset : new.data_offset + new.record.data_size] == item.data
    assert by_id[leaves[0].id].record.bundled_in == inner.id
    assert by_id[leaves[2].id].record.bundled_in == outer.id
    assert by_id[inner.id].record.bundled_in == outer.id


def _tamper(item: DataItem) -> DataItem:
    return dataclasses.replace(item, data=item.data + b"!")


def test_bad_signature_anywhere_refuses_the_upload(signers):
    ed = signers[2]
    good = _item(ed)
    with pytest.raises(SignatureError):
        prepare_upload(_tamper(good).to_bytes())
    bad_inner = Bundle.of([good, _tamper(_item(ed, b"x"))]).to_item(ed)
    with pytest.raises(DataError):
        prepare_upload(bad_inner.to_bytes())
    deeper = Bundle.of([Bundle.of([_tamper(good)]).to_item(ed)]).to_item(ed)
    with pytest.raises(DataError):
        prepare_upload(deeper.to_bytes())


def test_bundle_tagged_item_with_garbage_data_is_refused(signers):
    liar = DataItem.create(
        b"not a bundle", signer=signers[2], tags=[("Bundle-Format", "binary"), ("Bundle-Version", "2.0.0")]
    )
    with pytest.raises(DataError):
        prepare_upload(liar.to_bytes())


def test_depth_limit(signers):
    ed = signers[2]
    item = _item(ed)
    for _ in range(_core.MAX_BUNDLE_DEPTH):
        item = Bundle.of([item]).to_item(ed)
    assert len(prepare_upload(item.to_bytes()).items) == _core.MAX_BUNDLE_DEPTH + 1
    with pytest.raises(DataError, match="deeper"):
        prepare_upload(Bundle.of([item]).to_item(ed).to_bytes())


@pytest.mark.parametrize("raw", [b"", b"\x00", b"\x02\x00" + b"\x00" * 10, b"\xff\xff" + b"\x00" * 200])
def test_garbage_is_refused(raw):
    with pytest.raises(DataError):
        prepare_upload(raw)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, (0, 4)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=8-100", 10, (8, 9)),
        ("bytes=4-2", 10, None),  # invalid: ignored
        ("bytes=0-1,3-4", 10, None),  # several spans: ignored
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
    ],
)
def test_parse_range(header, size, expected):
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0), ("bytes=-1", 0)])
def test_unsatisfiable_range(header, size):
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def _record(tags) -> ItemRecord:
    return ItemRecord("i" * 43, 2, b"s", b"o", "a" * 43, "", b"", tuple(Tag(*t) for t in tags), 0)


def test_tag_headers_skip_what_cannot_be_a_header():
    record = _record(
        [
            ("Type", "Process"),
            ("Scheduler", "abc"),
            ("type", "second value ignored"),
            ("Content-Length", "999"),
            ("Content-Type", "text/plain"),
            ("Bad Name", "x"),
            ("Emoji", "\U0001f600"),
            ("Newline", "a\r\nInjected: 1"),
            ("Latin", "caf\u00e9"),
        ]
    )
    assert tag_headers(record) == {"type": "Process", "scheduler": "abc", "latin": "caf\u00e9"}
    assert _core.content_type(record) == "text/plain"
    assert _core.content_type(_record([("Content-Type", "bad\nvalue")])) == "application/octet-stream"


def test_tx_json_shape(signers):
    item = _item(signers[1], b"abc", anchor=b"z" * 32)
    body = _core.tx_json(_core.record_of(item, bundled_in="b" * 43))
    assert body["format"] == 2 and body["id"] == item.id and body["data_size"] == "3"
    assert body["tags"] == [{"name": "VHlwZQ", "value": "TWVzc2FnZQ"}]
    assert body["bundledIn"] == "b" * 43 and body["quantity"] == "0" and body["owner"]
