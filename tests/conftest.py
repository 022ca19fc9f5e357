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


# ---------------------------------------------------------------- PostgreSQL

import os  # noqa: E402
import uuid  # noqa: E402

from pyao.testing import postgres  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the session, on 127.0.0.1 and a free port."""
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    server = postgres.TemporaryPostgres().start()
    yield server
    server.stop()


@pytest.fixture
def postgres_dsn(postgres_server):
    """A fresh, empty database on the session's server."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres_server.dsn.rsplit("/", 1)[0] + "/" + name
