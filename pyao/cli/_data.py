"""CLI verbs for data items and wallets."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pyao.data import Bundle, DataItem, Ed25519Signer, Wallet, is_bundle, load_signer, save_signer
from pyao.errors import PyaoError

DEFAULT_WALLET = Path(os.environ.get("PYAO_WALLET", Path.home() / ".aos.json"))


def wallet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", type=Path, default=DEFAULT_WALLET, help="key file (default ~/.aos.json)")
    parser.add_argument("--new", action="store_true", help="create the key file if it does not exist")
    parser.add_argument("--type", choices=["arweave", "ed25519"], default="arweave", help="key type for --new")


def wallet(args: argparse.Namespace) -> int:
    if args.new and not args.path.exists():
        signer = Wallet.generate() if args.type == "arweave" else Ed25519Signer.generate()
        save_signer(signer, args.path)
        print(f"created {args.path}")
    signer = load_signer(args.path)
    print(json.dumps({"path": str(args.path), "type": signer.signature_type, "address": signer.address}))
    return 0


def item_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="raw item bytes ('-' for stdin)")
    parser.add_argument("--bundle", action="store_true", help="the file is a bare bundle body")


def _describe(item: DataItem) -> dict:
    return {
        "id": item.id,
        "valid": item.verify(),
        "signature_type": item.signature_type,
        "owner": item.owner_address,
        "target": item.target_id,
        "anchor": item.anchor_text,
        "tags": [{"name": t.name, "value": t.value} for t in item.tags],
        "data_size": len(item.data),
    }


def item(args: argparse.Namespace) -> int:
    import sys

    raw = sys.stdin.buffer.read() if str(args.file) == "-" else args.file.read_bytes()
    if args.bundle:
        bundle = Bundle.from_bytes(raw)
        print(json.dumps({"items": [_describe(i) for i in bundle.items]}, indent=2))
        return 0 if bundle.verify() else 1
    parsed = DataItem.from_bytes(raw)
    out = _describe(parsed)
    if is_bundle(parsed):
        try:
            out["bundle"] = [_describe(i) for i in Bundle.from_item(parsed).items]
        except PyaoError as exc:
            out["bundle_error"] = str(exc)
    print(json.dumps(out, indent=2))
    return 0 if out["valid"] else 1
