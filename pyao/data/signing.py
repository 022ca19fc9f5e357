"""Signature schemes (verify side, keyed by ANS-104 signature type) and signers.

The registry ``SCHEMES`` is explicit: a type pyao does not list is refused with
``UnsupportedSignatureType``. What each type signs follows arbundles, the
reference implementation, not the ANS-104 text:

==== ========= ===== ===== ===========================================================
type name      sig   owner message signed (m = the 48-byte deep hash)
==== ========= ===== ===== ===========================================================
1    arweave   512   512   RSA-PSS/SHA-256 over m; sign with maximum salt, verify any salt
2    ed25519    64    32   Ed25519 over m
3    ethereum   65    65   secp256k1 over keccak256("\\x19Ethereum Signed Message:\\n48" + m),
                           r||s||v; s must be low and v (27/28) must recover the owner
4    solana     64    32   Ed25519 over the ASCII hex of m (arbundles HexSolanaSigner)
==== ========= ===== ===== ===========================================================
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import coincurve
from coincurve._libsecp256k1 import ffi as _secp_ffi
from coincurve._libsecp256k1 import lib as _secp_lib
from coincurve.ecdsa import GLOBAL_CONTEXT as _SECP_CONTEXT
from Crypto.Hash import keccak
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from nacl import bindings as _sodium
from nacl.exceptions import BadSignatureError, CryptoError

from pyao.abc import Signer
from pyao.data._b64 import b64url_encode
from pyao.errors import SignatureError, UnsupportedSignatureType, WalletError

_PSS_VERIFY = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
_PSS_SIGN = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
_SHA256 = hashes.SHA256()
_EIP191_PREFIX = b"\x19Ethereum Signed Message:\n48"
_RSA_EXPONENT = 65537


def keccak256(data: bytes) -> bytes:
    return keccak.new(digest_bits=256, data=data).digest()


# ---------------------------------------------------------------- verifiers


@lru_cache(maxsize=1024)
def _rsa_public_key(owner: bytes) -> rsa.RSAPublicKey:
    # Arweave owners are the bare modulus; the exponent is always 65537.
    return rsa.RSAPublicNumbers(_RSA_EXPONENT, int.from_bytes(owner, "big")).public_key()


def _verify_rsa(owner: bytes, message: bytes, signature: bytes) -> bool:
    try:
        _rsa_public_key(owner).verify(signature, message, _PSS_VERIFY, _SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


# Ed25519 is libsodium's (PyNaCl), not OpenSSL's (``cryptography``): on the machines pyao is
# measured on it verifies in ~50 µs against ~85 µs and signs in ~19 µs against ~26 µs, and its
# calls let the GIL go (``cryptography`` 51 holds it), so other threads run meanwhile. Both give
# the same (deterministic, RFC 8032) signatures; libsodium's check is the stricter (it also refuses
# small-order keys and R), so every signature it accepts OpenSSL's check accepts too.
def _verify_ed25519(owner: bytes, message: bytes, signature: bytes) -> bool:
    if len(signature) != 64 or len(owner) != 32:
        return False
    try:
        _sodium.crypto_sign_open(signature + message, owner)
    except (BadSignatureError, CryptoError, ValueError):
        return False
    return True


def _verify_solana(owner: bytes, message: bytes, signature: bytes) -> bool:
    return _verify_ed25519(owner, message.hex().encode("ascii"), signature)


_SECP256K1_HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


@lru_cache(maxsize=1024)
def _secp_public_key(owner: bytes):
    """The parsed libsecp256k1 key of an owner, or None when the bytes are no valid key."""
    try:
        return coincurve.PublicKey(owner).public_key
    except ValueError:
        return None


def _verify_ethereum(owner: bytes, message: bytes, signature: bytes) -> bool:
    """r||s||v over EIP-191. Stricter than arbundles, which ignores v: v must be 27 or 28
    and recover the owner, and s must be low, so no third party can make a second valid
    signature (and so a second id) for the same item."""
    v = signature[64]
    if v not in (27, 28) or int.from_bytes(signature[32:64], "big") > _SECP256K1_HALF_ORDER:
        return False
    owner_key = _secp_public_key(owner)
    if owner_key is None:
        return False
    ctx = _SECP_CONTEXT.ctx
    sig = _secp_ffi.new("secp256k1_ecdsa_recoverable_signature *")
    if not _secp_lib.secp256k1_ecdsa_recoverable_signature_parse_compact(ctx, sig, signature[:64], v - 27):
        return False
    recovered = _secp_ffi.new("secp256k1_pubkey *")
    digest = keccak256(_EIP191_PREFIX + message)
    if not _secp_lib.secp256k1_ecdsa_recover(ctx, recovered, sig, digest):
        return False
    return _secp_lib.secp256k1_ec_pubkey_cmp(ctx, recovered, owner_key) == 0


# ---------------------------------------------------------------- addresses


@lru_cache(maxsize=4096)
def arweave_address(owner: bytes) -> str:
    """The ao/Arweave address of an owner: base64url(sha256(owner)). (Remembered: every item the
    gateway ingests and every schedule entry the SU renders asks for it, of few distinct owners.)"""
    return b64url_encode(hashlib.sha256(owner).digest())


@lru_cache(maxsize=4096)
def ethereum_address(owner: bytes) -> str:
    """EIP-55 checksummed address of a 65-byte uncompressed secp256k1 key."""
    hex_addr = keccak256(owner[1:])[-20:].hex()
    check = keccak256(hex_addr.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(check[i], 16) >= 8 else c for i, c in enumerate(hex_addr))


# ---------------------------------------------------------------- registry


@dataclass(frozen=True)
class SignatureScheme:
    """How one ANS-104 signature type is laid out, verified and addressed."""

    signature_type: int
    name: str
    signature_length: int
    owner_length: int
    verify: Callable[[bytes, bytes, bytes], bool]
    address: Callable[[bytes], str]


SCHEMES: dict[int, SignatureScheme] = {
    1: SignatureScheme(1, "arweave", 512, 512, _verify_rsa, arweave_address),
    2: SignatureScheme(2, "ed25519", 64, 32, _verify_ed25519, arweave_address),
    3: SignatureScheme(3, "ethereum", 65, 65, _verify_ethereum, ethereum_address),
    4: SignatureScheme(4, "solana", 64, 32, _verify_solana, arweave_address),
}


def scheme_for(signature_type: int) -> SignatureScheme:
    try:
        return SCHEMES[signature_type]
    except KeyError:
        known = ", ".join(f"{t} ({s.name})" for t, s in SCHEMES.items())
        raise UnsupportedSignatureType(
            f"signature type {signature_type} is not supported; known types: {known}"
        ) from None


# ---------------------------------------------------------------- signers


class Ed25519Signer(Signer):
    """ANS-104 type 2: an Ed25519 key (also what arbundles' SolanaSigner produces)."""

    signature_type = 2

    def __init__(self, seed: bytes) -> None:
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise WalletError("an Ed25519 seed is 32 bytes")
        self._seed = seed
        # libsodium's 64-byte secret key (seed || public key) and the public key
        self._owner, self._secret = _sodium.crypto_sign_seed_keypair(seed)

    @classmethod
    def from_seed(cls, seed: bytes) -> Ed25519Signer:
        return cls(seed)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        return cls(os.urandom(32))

    @property
    def seed(self) -> bytes:
        return self._seed

    @property
    def owner(self) -> bytes:
        return self._owner

    def sign(self, message: bytes) -> bytes:
        return _sodium.crypto_sign(message, self._secret)[:64]


class SolanaSigner(Ed25519Signer):
    """ANS-104 type 4: Ed25519 over the hex text of the deep hash (arbundles HexSolanaSigner)."""

    signature_type = 4

    @classmethod
    def from_secret_key(cls, secret: bytes) -> SolanaSigner:
        """A 64-byte Solana secret key (seed || public key), as Solana wallets store it."""
        if len(secret) != 64:
            raise WalletError("a Solana secret key is 64 bytes")
        signer = cls.from_seed(secret[:32])
        if signer.owner != secret[32:]:
            raise WalletError("the Solana secret key's public half does not match its seed")
        return signer

    def sign(self, message: bytes) -> bytes:
        return super().sign(message.hex().encode("ascii"))


class EthereumSigner(Signer):
    """ANS-104 type 3: secp256k1 with EIP-191 personal_sign, as ethers' Wallet.signMessage."""

    signature_type = 3

    def __init__(self, private_key: bytes) -> None:
        try:
            self._key = coincurve.PrivateKey(private_key)
        except (ValueError, TypeError) as exc:
            raise WalletError(f"not a secp256k1 private key: {exc}") from exc
        self._owner = self._key.public_key.format(compressed=False)

    @classmethod
    def from_hex(cls, text: str) -> EthereumSigner:
        text = text[2:] if text.startswith("0x") else text
        try:
            return cls(bytes.fromhex(text))
        except ValueError as exc:
            raise WalletError("an Ethereum private key is 32 bytes of hex") from exc

    @classmethod
    def generate(cls) -> EthereumSigner:
        return cls(coincurve.PrivateKey().secret)

    @property
    def owner(self) -> bytes:
        return self._owner

    def sign(self, message: bytes) -> bytes:
        digest = keccak256(_EIP191_PREFIX + message)
        sig = self._key.sign_recoverable(digest, hasher=None)
        return sig[:64] + bytes([sig[64] + 27])


#: Signer classes (exact types, never subclasses: one may override ``sign``) whose signatures
#: always verify: a mature library's signature over a key this process holds. An item one of
#: them signs is remembered as parsed and verified (``pyao.data.item.remember_signed``), so in
#: ``pyao up`` the SU and the gateway do not check again what the MU or the SU just signed.
SELF_VERIFYING_SIGNERS: set[type[Signer]] = {Ed25519Signer, SolanaSigner, EthereumSigner}


def check_signature(signer: Signer, message: bytes, signature: bytes) -> bytes:
    """Guard for signers: the signature has its type's length, or SignatureError."""
    expected = scheme_for(signer.signature_type).signature_length
    if len(signature) != expected:
        raise SignatureError(
            f"signer made a {len(signature)}-byte signature; type {signer.signature_type} needs {expected}"
        )
    return signature
