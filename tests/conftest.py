"""Shared fixtures: one signer of each ANS-104 type, made once per session."""

from __future__ import annotations

import pytest

from pyao.data import Ed25519Signer, EthereumSigner, SolanaSigner, Wallet


@pytest.fixture(scope="session")
def rsa_wallet() -> Wallet:
    return Wallet.generate()


@pytest.fixture(scope="session")
def signers(rsa_wallet):
    """Signature type -> a signer of that type."""
    return {
        1: rsa_wallet,
        2: Ed25519Signer.from_seed(bytes(range(32))),
        3: EthereumSigner.from_hex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"),
        4: SolanaSigner.from_seed(bytes(range(32, 64))),
    }


@pytest.fixture(params=[1, 2, 3, 4], ids=["arweave", "ed25519", "ethereum", "solana"])
def signer(request, signers):
    return signers[request.param]
