"""Data-item throughput: pyao parse+verify against the bare library signature check.

For 1 KiB items of each signature type, it times, side by side in one run:

* bare: the crypto library's own check given the public key bytes, the 48-byte
  deep hash and the signature (key construction included, nothing parsed): the
  library pyao uses (libsodium for Ed25519; a row against OpenSSL's for comparison);
* pyao: ``DataItem.from_bytes(raw).verify()`` from the raw item bytes (parse,
  Avro tags, deep hash, key, signature).

The rounds alternate between the two and keep each side's best round, so
machine noise hits both alike. Goal: pyao/bare <= 1.3. It also reports
parse-only throughput for small items.

    python bench/bench_items.py [--items 200] [--rounds 7]
"""

from __future__ import annotations

import argparse
import time

import coincurve
from coincurve.ecdsa import cdata_to_der, deserialize_compact
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from nacl import bindings as sodium

from pyao.data import DataItem, Ed25519Signer, EthereumSigner, SolanaSigner, Wallet, ao
from pyao.data.item import forget_remembered
from pyao.data.signing import keccak256

PSS_AUTO = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
SHA256 = hashes.SHA256()


def bare_rsa(owner: bytes, message: bytes, signature: bytes) -> None:
    key = rsa.RSAPublicNumbers(65537, int.from_bytes(owner, "big")).public_key()
    key.verify(signature, message, PSS_AUTO, SHA256)


def bare_ed25519(owner: bytes, message: bytes, signature: bytes) -> None:
    """libsodium's check, the library pyao verifies Ed25519 with."""
    sodium.crypto_sign_open(signature + message, owner)


def bare_ed25519_openssl(owner: bytes, message: bytes, signature: bytes) -> None:
    """OpenSSL's (``cryptography``), what pyao used before libsodium: for comparison."""
    ed25519.Ed25519PublicKey.from_public_bytes(owner).verify(signature, message)


def bare_solana(owner: bytes, message: bytes, signature: bytes) -> None:
    sodium.crypto_sign_open(signature + message.hex().encode(), owner)


def bare_ethereum_recover(owner: bytes, message: bytes, signature: bytes) -> None:
    """What pyao checks for type 3: v recovers the owner (s low is implied by the signer)."""
    digest = keccak256(b"\x19Ethereum Signed Message:\n48" + message)
    recoverable = signature[:64] + bytes([signature[64] - 27])
    recovered = coincurve.PublicKey.from_signature_and_message(recoverable, digest, hasher=None)
    assert recovered.format(compressed=False) == owner


def bare_ethereum_verify(owner: bytes, message: bytes, der_signature: bytes) -> None:
    """arbundles' weaker check for type 3: (r, s) against the owner, v ignored."""
    digest = keccak256(b"\x19Ethereum Signed Message:\n48" + message)
    assert coincurve.PublicKey(owner).verify(der_signature, digest, hasher=None)


def _raw_signature(item: DataItem) -> bytes:
    return item.signature


def _der_signature(item: DataItem) -> bytes:
    return cdata_to_der(deserialize_compact(item.signature[:64]))


# name -> (make a signer, the bare library check, the signature form that check takes)
CASES = {
    "arweave (1)": (Wallet.generate, bare_rsa, _raw_signature),
    "ed25519 (2)": (Ed25519Signer.generate, bare_ed25519, _raw_signature),
    "ed25519 (2) vs OpenSSL": (Ed25519Signer.generate, bare_ed25519_openssl, _raw_signature),
    "ethereum (3)": (EthereumSigner.generate, bare_ethereum_recover, _raw_signature),
    "ethereum (3) vs verify-only": (EthereumSigner.generate, bare_ethereum_verify, _der_signature),
    "solana (4)": (lambda: SolanaSigner.from_seed(bytes(range(32))), bare_solana, _raw_signature),
}


def make_items(signer, count: int, size: int) -> list[bytes]:
    tags = ao.message_tags([("Action", "Transfer"), ("Recipient", "r" * 43), ("Quantity", "1000")])
    return [
        DataItem.create(i.to_bytes(4, "big") * (size // 4), signer=signer, tags=tags, target="A" * 43).to_bytes()
        for i in range(count)
    ]


def best_per_item(fn, inputs, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        forget_remembered()  # every round parses and checks for real, none is a memo hit
        start = time.perf_counter()
        for args in inputs:
            fn(*args)
        best = min(best, (time.perf_counter() - start) / len(inputs))
    return best


def pyao_verify(raw: bytes) -> None:
    assert DataItem.from_bytes(raw).verify()


def run(count: int, rounds: int) -> list[dict]:
    rows = []
    for name, (make_signer, bare, sig) in CASES.items():
        raws = make_items(make_signer(), count, 1024)
        items = [DataItem.from_bytes(r) for r in raws]
        bare_inputs = [(it.owner, it.signature_data(), sig(it)) for it in items]
        ours_inputs = [(r,) for r in raws]
        bare_s = ours_s = float("inf")
        for _ in range(rounds):  # alternate, so noise lands on both sides
            bare_s = min(bare_s, best_per_item(bare, bare_inputs, 1))
            ours_s = min(ours_s, best_per_item(pyao_verify, ours_inputs, 1))
        small = make_items(make_signer(), min(count, 50) if "arweave" in name else count, 64)
        parse_s = best_per_item(DataItem.from_bytes, [(r,) for r in small], rounds)
        rows.append(
            {
                "type": name,
                "bare_per_s": 1 / bare_s,
                "pyao_per_s": 1 / ours_s,
                "ratio": ours_s / bare_s,
                "parse_small_per_s": 1 / parse_s,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200, help="distinct items per signature type")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    rows = run(args.items, args.rounds)
    print(
        "| signature type | bare check /s | pyao parse+verify /s "
        "| pyao / bare (goal <= 1.3) | parse only, 64 B items /s |"
    )
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['type']} | {r['bare_per_s']:,.0f} | {r['pyao_per_s']:,.0f} | {r['ratio']:.2f}x "
            f"| {r['parse_small_per_s']:,.0f} |"
        )


if __name__ == "__main__":
    main()
