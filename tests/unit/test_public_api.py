"""Guards the curated public face: a change here is a deliberate API change."""

import pyao
import pyao.data


def test_top_level_api():
    assert sorted(pyao.__all__) == sorted(
        [
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
    )
    for name in pyao.__all__:
        assert hasattr(pyao, name)


def test_data_api_names_exist():
    for name in pyao.data.__all__:
        assert hasattr(pyao.data, name)


def test_error_tree():
    assert issubclass(pyao.ParseError, pyao.DataError)
    assert issubclass(pyao.UnsupportedSignatureType, pyao.SignatureError)
    assert issubclass(pyao.DataError, pyao.PyaoError) and issubclass(pyao.WalletError, pyao.PyaoError)
