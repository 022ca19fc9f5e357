"""A file signed in chunks (``pyao.client.upload``) is the same item ``DataItem.create`` would make."""

from __future__ import annotations

import asyncio
import os

import pytest

from pyao.client import upload as upload_module
from pyao.client.upload import file_chunks, sign_file
from pyao.data import DataItem, Ed25519Signer
from pyao.errors import DataError, SignatureError

SIGNER = Ed25519Signer.from_seed(bytes([5]) * 32)


def _collect(item, progress=None) -> bytes:
    async def run() -> bytes:
        return b"".join([chunk async for chunk in file_chunks(item, progress)])

    return asyncio.run(run())


@pytest.mark.parametrize("size", [0, 1, 1000, 3 * upload_module.CHUNK + 7])
def test_streamed_item_parses_verifies_and_matches_create(tmp_path, size):
    path = tmp_path / "f"
    payload = os.urandom(size)
    path.write_bytes(payload)
    tags = [("Content-Type", "application/x-test"), ("Name", "f")]
    item = sign_file(path, SIGNER, tags, target="A" * 43)
    seen = []
    raw = _collect(item, lambda sent, total: seen.append((sent, total)))
    parsed = DataItem.from_bytes(raw, verify=True)
    assert parsed.id == item.id and parsed.data == payload and len(raw) == item.length
    # Ed25519 signatures are deterministic: the very bytes DataItem.create makes
    assert raw == DataItem.create(payload, signer=SIGNER, tags=tags, target="A" * 43).to_bytes()
    assert seen[-1] == (item.length, item.length)


def test_a_file_that_changes_after_signing_is_refused(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    item = sign_file(path, SIGNER)
    path.write_bytes(b"x" * 101)
    with pytest.raises(DataError, match="grew"):
        _collect(item)
    path.write_bytes(b"x" * 99)
    with pytest.raises(DataError, match="shrank"):
        _collect(item)
    path.write_bytes(b"y" * 100)  # same size, other bytes: the signature no longer matches
    with pytest.raises(SignatureError):
        DataItem.from_bytes(_collect(item), verify=True)
