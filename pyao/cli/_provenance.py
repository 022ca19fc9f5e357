"""``pyao provenance FILE|TEXT``: was this content produced by a model on ao, by which model, in which message?

Hashes the content (a file's bytes if the argument names a file, else the text
as UTF-8) and asks the gateway's GraphQL for ANS-112 ``Provenance-Confirmation``
records with that ``Data-Hash`` (``pyao.provenance``). Exit status 0 when at
least one record exists, 1 when none does.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def provenance_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("content", help="a file, or the text itself")
    parser.add_argument("--gateway", default=os.environ.get("GATEWAY_URL", "http://127.0.0.1:4000"), help="gateway URL")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")


def provenance(args: argparse.Namespace) -> int:
    import httpx

    from pyao.errors import UnitError
    from pyao.provenance import find_records, sha256_hex

    path = Path(args.content)
    content = path.read_bytes() if path.is_file() else args.content.encode()
    try:
        records = find_records(args.gateway.rstrip("/"), content)
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise UnitError(f"the gateway at {args.gateway} could not answer: {exc}") from None
    if args.json:
        print(json.dumps([r.__dict__ for r in records], indent=1))
    elif not records:
        print(f"no provenance record for content with sha256 {sha256_hex(content)}")
    else:
        print(f"produced by a model: {len(records)} record(s) for sha256 {sha256_hex(content)}")
        for r in records:
            print(f"  model {r.model}  process {r.process}  message {r.message}  (record {r.id}, by {r.recorder})")
    return 0 if records else 1
