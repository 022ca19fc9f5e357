"""Wallets: key files that become signers.

The Arweave wallet is an RSA-4096 JWK, the same file format as ``~/.aos.json``
and arweave-js (``kty, e, n, d, p, q, dp, dq, qi``). Units may also run on an
Ed25519 key (an OKP JWK), which signs some 60x faster; ``load_signer`` picks
the signer class from the file's key type.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from pyao.abc import Signer
from pyao.data._b64 import b64url_decode, b64url_encode
from pyao.data.signing import _PSS_SIGN, _SHA256, SELF_VERIFYING_SIGNERS, Ed25519Signer
from pyao.errors import ParseError, WalletError

_RSA_BITS = 4096
_JWK_INT_FIELDS = ("n", "e", "d", "p", "q", "dp", "dq", "qi")


def _int(value: int, length: int | None = None) -> str:
    length = length or max(1, (value.bit_length() + 7) // 8)
    return b64url_encode(value.to_bytes(length, "big"))


def _jwk_int(jwk: dict[str, Any], field: str) -> int:
    try:
        return int.from_bytes(b64url_decode(jwk[field]), "big")
    except KeyError:
        raise WalletError(f"the JWK has no {field!r}") from None
    except (ParseError, TypeError) as exc:
        raise WalletError(f"the JWK field {field!r} is not base64url") from exc


class Wallet(Signer):
    """An Arweave RSA-4096 wallet: ANS-104 signature type 1 (RSA-PSS, maximum salt)."""

    signature_type = 1

    def __init__(self, private_key: rsa.RSAPrivateKey) -> None:
        if private_key.key_size != _RSA_BITS:
            raise WalletError(f"Arweave wallets are RSA-{_RSA_BITS}, not RSA-{private_key.key_size}")
        self._key = private_key
        self._owner = private_key.public_key().public_numbers().n.to_bytes(_RSA_BITS // 8, "big")

    @classmethod
    def generate(cls) -> Wallet:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS))

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> Wallet:
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA":
            raise WalletError("an Arweave wallet is a JWK with kty 'RSA'")
        n, e, d, p, q, dp, dq, qi = (_jwk_int(jwk, f) for f in _JWK_INT_FIELDS)
        try:
            public = rsa.RSAPublicNumbers(e, n)
            key = rsa.RSAPrivateNumbers(p, q, d, dp, dq, qi, public).private_key()
        except ValueError as exc:
            raise WalletError(f"the JWK is not a consistent RSA key: {exc}") from exc
        return cls(key)

    def to_jwk(self) -> dict[str, str]:
        numbers = self._key.private_numbers()
        pub = numbers.public_numbers
        return {
            "kty": "RSA",
            "e": _int(pub.e),
            "n": _int(pub.n, _RSA_BITS // 8),
            "d": _int(numbers.d),
            "p": _int(numbers.p),
            "q": _int(numbers.q),
            "dp": _int(numbers.dmp1),
            "dq": _int(numbers.dmq1),
            "qi": _int(numbers.iqmp),
        }

    @property
    def owner(self) -> bytes:
        return self._owner

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, _PSS_SIGN, _SHA256)

    # -------------------------------------------------------------- files

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Wallet:
        signer = load_signer(path)
        if not isinstance(signer, Wallet):
            raise WalletError(f"{path} holds a {type(signer).__name__}, not an Arweave wallet")
        return signer

    def save(self, path: str | os.PathLike[str]) -> None:
        _write_private(Path(path), self.to_jwk())

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str]) -> Wallet:
        """Load the wallet at ``path``, or generate one there (as aos does with ~/.aos.json)."""
        path = Path(path).expanduser()
        if path.exists():
            return cls.load(path)
        wallet = cls.generate()
        wallet.save(path)
        return wallet


SELF_VERIFYING_SIGNERS.add(Wallet)  # RSA-PSS by `cryptography` over the wallet's own key


def ed25519_jwk(signer: Ed25519Signer) -> dict[str, str]:
    """An Ed25519 signer as an OKP JWK (RFC 8037)."""
    return {"kty": "OKP", "crv": "Ed25519", "d": b64url_encode(signer.seed), "x": b64url_encode(signer.owner)}


def signer_from_jwk(jwk: dict[str, Any]) -> Signer:
    """An RSA JWK becomes a ``Wallet``; an Ed25519 OKP JWK becomes an ``Ed25519Signer``."""
    if not isinstance(jwk, dict):
        raise WalletError("a key file holds one JSON object (a JWK)")
    if jwk.get("kty") == "RSA":
        return Wallet.from_jwk(jwk)
    if jwk.get("kty") == "OKP" and jwk.get("crv") == "Ed25519":
        try:
            signer = Ed25519Signer.from_seed(b64url_decode(jwk.get("d", "")))
        except ParseError as exc:
            raise WalletError("the Ed25519 JWK's 'd' is not base64url") from exc
        if "x" in jwk and b64url_encode(signer.owner) != jwk["x"]:
            raise WalletError("the Ed25519 JWK's public key does not match its private key")
        return signer
    raise WalletError(f"unsupported key type {jwk.get('kty')!r}/{jwk.get('crv')!r}; use RSA or OKP Ed25519")


def load_signer(path: str | os.PathLike[str]) -> Signer:
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise WalletError(f"cannot read key file {path}: {exc.strerror}") from exc
    try:
        jwk = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WalletError(f"key file {path} is not JSON: {exc}") from exc
    return signer_from_jwk(jwk)


def save_signer(signer: Signer, path: str | os.PathLike[str]) -> None:
    if isinstance(signer, Wallet):
        jwk = signer.to_jwk()
    elif type(signer) is Ed25519Signer:
        jwk = ed25519_jwk(signer)
    else:
        raise WalletError(f"cannot save a {type(signer).__name__} as a JWK")
    _write_private(Path(path), jwk)


def load_or_create_signer(path: str | os.PathLike[str], key_type: str = "ed25519") -> Signer:
    """A unit's key: the one at ``path``, or a new ``key_type`` key ("arweave" RSA or
    "ed25519") saved there first."""
    path = Path(path).expanduser()
    if path.exists():
        return load_signer(path)
    if key_type == "arweave":
        signer: Signer = Wallet.generate()
    elif key_type == "ed25519":
        signer = Ed25519Signer.generate()
    else:
        raise WalletError(f"unknown wallet type {key_type!r}: use arweave or ed25519")
    save_signer(signer, path)
    return signer


def _write_private(path: Path, jwk: dict[str, str]) -> None:
    """Write a key file readable by its owner only, atomically."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(jwk, fh)
    os.replace(tmp, path)
