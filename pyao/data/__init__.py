"""ANS-104 data: items, bundles, deep hash, Avro tags, signers, wallets and ao tag helpers.

This package knows no unit: the SU, MU, CU and gateway all build on it.
"""

from pyao.data import ao
from pyao.data._b64 import b64url_decode, b64url_encode, decode_id, is_id
from pyao.data.bundle import BUNDLE_TAGS, Bundle, is_bundle
from pyao.data.deephash import deep_hash
from pyao.data.item import DataItem
from pyao.data.signing import (
    SCHEMES,
    Ed25519Signer,
    EthereumSigner,
    SignatureScheme,
    SolanaSigner,
    scheme_for,
)
from pyao.data.tags import Tag, decode_tags, encode_tags
from pyao.data.wallet import Wallet, load_or_create_signer, load_signer, save_signer, signer_from_jwk

__all__ = [
    "BUNDLE_TAGS",
    "SCHEMES",
    "Bundle",
    "DataItem",
    "Ed25519Signer",
    "EthereumSigner",
    "SignatureScheme",
    "SolanaSigner",
    "Tag",
    "Wallet",
    "ao",
    "b64url_decode",
    "b64url_encode",
    "decode_id",
    "decode_tags",
    "deep_hash",
    "encode_tags",
    "is_bundle",
    "is_id",
    "load_or_create_signer",
    "load_signer",
    "save_signer",
    "scheme_for",
    "signer_from_jwk",
]
