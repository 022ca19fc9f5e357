"""pyao: a Python implementation of ao, the actor-oriented computer on Arweave.

The public face is deliberately small; ``tests/unit/test_public_api.py`` guards it.
"""

from pyao.abc import Signer
from pyao.client.connect import AsyncConnection, Connection, connect, connect_async
from pyao.data import Bundle, DataItem, Ed25519Signer, EthereumSigner, SolanaSigner, Tag, Wallet
from pyao.errors import (
    AoTagError,
    DataError,
    ParseError,
    PyaoError,
    SignatureError,
    TagError,
    UnsupportedSignatureType,
    WalletError,
)

__version__ = "0.1.0"

__all__ = [
    "AoTagError",
    "AsyncConnection",
    "Bundle",
    "Connection",
    "DataError",
    "DataItem",
    "Ed25519Signer",
    "EthereumSigner",
    "ParseError",
    "PyaoError",
    "SignatureError",
    "Signer",
    "SolanaSigner",
    "Tag",
    "TagError",
    "UnsupportedSignatureType",
    "Wallet",
    "WalletError",
    "__version__",
    "connect",
    "connect_async",
]
