"""Helpers for the WeaveDrive tests: a real gateway over HTTP, items to read, attestations to make."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from pyao.config import GatewayConfig
from pyao.data import DataItem, Ed25519Signer
from pyao.gateway import create_app as gateway_app
from pyao.testing.servers import serve_app

UPLOADER = Ed25519Signer.from_seed(bytes([31]) * 32)
ATTESTOR = Ed25519Signer.from_seed(bytes([32]) * 32)
SCHEDULER = Ed25519Signer.from_seed(bytes([33]) * 32)
STRANGER = Ed25519Signer.from_seed(bytes([34]) * 32)

_anchors = itertools.count(1)


def sample_bytes(size: int, seed: int = 7) -> bytes:
    """``size`` bytes that differ at every offset of interest (no repeating 4 KiB pattern)."""
    out, state = bytearray(), seed
    while len(out) < size:
        state = (state * 6364136223846793005 + 1442695040888963407) % 2**64
        out += state.to_bytes(8, "little")
    return bytes(out[:size])


def item(data: bytes | str, signer=UPLOADER, tags=()) -> DataItem:
    anchor = f"{next(_anchors):032d}"  # ed25519 signs deterministically: anchors keep ids apart
    return DataItem.create(data, signer=signer, tags=list(tags), anchor=anchor)


def attestation(item_id: str, signer=ATTESTOR) -> DataItem:
    """An attestation as the cookbook describes it: ``Data-Protocol: ao, Type: Attestation, Message: <id>``."""
    return item(b"", signer, [("Data-Protocol", "ao"), ("Type", "Attestation"), ("Message", item_id)])


def availability(item_id: str, signer=ATTESTOR) -> DataItem:
    """An Individual-mode availability record: ``Data-Protocol: WeaveDrive, Type: Available, ID: <id>``."""
    return item(b"", signer, [("Data-Protocol", "WeaveDrive"), ("Type", "Available"), ("ID", item_id)])


@dataclass
class Gateway:
    url: str
    uploaded: list[str] = field(default_factory=list)

    def upload(self, it: DataItem) -> str:
        r = httpx.post(self.url + "/tx/arweave", content=it.to_bytes(), timeout=60)
        assert r.status_code == 200, r.text
        self.uploaded.append(it.id)
        return it.id

    def mine(self) -> int:
        """Seal a block now; its height."""
        r = httpx.post(self.url + "/mine", timeout=30)
        assert r.status_code == 200, r.text
        return self.height()

    def height(self) -> int:
        return int(httpx.get(self.url + "/info", timeout=30).json()["height"])


@contextlib.contextmanager
def gateway(tmp: Path) -> Iterator[Gateway]:
    """pyao's gateway on SQLite, served on a loopback port, sealing blocks only on /mine."""
    cfg = GatewayConfig(db=f"sqlite:///{tmp / 'gw.db'}", block_seconds=0)
    with serve_app(gateway_app(cfg)) as url:
        yield Gateway(url)
