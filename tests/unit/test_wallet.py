import json
import os
import stat

import pytest

from pyao.data import DataItem, Ed25519Signer, EthereumSigner, SolanaSigner, Wallet, load_signer, save_signer
from pyao.errors import WalletError


def test_jwk_round_trip_and_file_format(tmp_path, rsa_wallet):
    path = tmp_path / "wallet.json"
    rsa_wallet.save(path)
    jwk = json.loads(path.read_text())
    assert set(jwk) == {"kty", "e", "n", "d", "p", "q", "dp", "dq", "qi"}
    assert jwk["kty"] == "RSA" and jwk["e"] == "AQAB"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = Wallet.load(path)
    assert loaded.owner == rsa_wallet.owner and loaded.address == rsa_wallet.address
    item = DataItem.create(b"x", signer=loaded)
    assert item.verify() and item.owner_address == rsa_wallet.address


def test_load_or_create_keeps_the_first_wallet(tmp_path):
    path = tmp_path / "nested" / ".aos.json"
    first = Wallet.load_or_create(path)
    assert Wallet.load_or_create(path).address == first.address


def test_ed25519_key_file_round_trip(tmp_path):
    signer = Ed25519Signer.generate()
    save_signer(signer, tmp_path / "k.json")
    loaded = load_signer(tmp_path / "k.json")
    assert isinstance(loaded, Ed25519Signer) and loaded.owner == signer.owner


@pytest.mark.parametrize(
    "content, message",
    [
        ("not json", "not JSON"),
        ("[1, 2]", "one JSON object"),
        ('{"kty": "EC"}', "unsupported key type"),
        ('{"kty": "RSA", "n": "AQAB"}', "has no"),
        (
            '{"kty": "RSA", "n": "!!", "e": "AQAB", "d": "", "p": "", "q": "", "dp": "", "dq": "", "qi": ""}',
            "base64url",
        ),
        ('{"kty": "OKP", "crv": "Ed25519", "d": "AAAA"}', "32 bytes"),
    ],
)
def test_bad_key_files_are_wallet_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(WalletError, match=message):
        load_signer(path)


def test_missing_file_is_a_wallet_error(tmp_path):
    with pytest.raises(WalletError, match="cannot read"):
        Wallet.load(tmp_path / "absent.json")


def test_inconsistent_rsa_jwk_is_refused(rsa_wallet):
    jwk = dict(rsa_wallet.to_jwk())
    jwk["d"] = jwk["dp"]
    with pytest.raises(WalletError, match="consistent"):
        Wallet.from_jwk(jwk)


def test_small_rsa_keys_are_refused():
    from cryptography.hazmat.primitives.asymmetric import rsa

    with pytest.raises(WalletError, match="RSA-4096"):
        Wallet(rsa.generate_private_key(public_exponent=65537, key_size=2048))


def test_other_key_types():
    with pytest.raises(WalletError):
        EthereumSigner.from_hex("zz")
    with pytest.raises(WalletError):
        EthereumSigner(b"\x00" * 32)
    secret = SolanaSigner.from_seed(b"\x05" * 32)
    assert SolanaSigner.from_secret_key(secret.seed + secret.owner).owner == secret.owner
    with pytest.raises(WalletError, match="does not match"):
        SolanaSigner.from_secret_key(secret.seed + b"\x00" * 32)


def test_load_or_create_signer_for_units(tmp_path):
    from pyao.data import load_or_create_signer

    first = load_or_create_signer(tmp_path / "unit.json")
    assert isinstance(first, Ed25519Signer)
    assert load_or_create_signer(tmp_path / "unit.json", "arweave").owner == first.owner  # an existing key wins
    assert isinstance(load_or_create_signer(tmp_path / "rsa.json", "arweave"), Wallet)
    with pytest.raises(WalletError, match="unknown wallet type"):
        load_or_create_signer(tmp_path / "x.json", "dsa")


def test_key_paths_expand_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    created = Wallet.load_or_create("~/.aos.json")
    assert (tmp_path / ".aos.json").exists()
    assert load_signer("~/.aos.json").address == created.address
