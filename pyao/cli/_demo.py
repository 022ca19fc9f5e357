"""``pyao demo llama-fed [--model FILE.gguf]``: the Llama Fed end to end on the embedded network.

Starts ``pyao up``'s units in this process (fresh data directory, free loopback
ports) with the CU's own configured devices (``weavedrive@1.0,llm@1.0``, built
in its VM worker processes; ``llm@1.0`` records provenance with the CU's
wallet), uploads the model, attests it with the demo's wallet (as ``pyao
attest --wait`` does) and waits until the attestation is in a block, spawns
three processes from the aos module (a payment token, the Fed, and the King,
which has ``Extension: WeaveDrive`` and ``Attestor: <the demo's wallet>`` so
WeaveDrive lets it read the model), gives two citizens payment tokens, and has
them petition: citizen A twice on the same day (the second is refunded),
citizen B once. It shows that WeaveDrive's rules hold: the King may not load an
item nobody attested. It prints each grade, mint and reasoning as the Fed's
results show them, the balances, and the provenance record of each of the
King's answers (uploaded by the CU, so the demo waits for them on the gateway).
Without ``--model`` it writes a small random-weight model and says so: its
grades are noise, not judgements.

``--json`` prints a machine-readable summary last (the CI test reads it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pyao.errors import RequestError

PETITIONS = (
    ("A", "Grant me LLAMA to plant a public garden of alfalfa for every llama in the land."),
    ("A", "And a second petition the same day, for more grass."),
    ("B", "I will write a song about the King's wisdom; fund my studio time."),
)
FEE_WHOLE = 1
TIMEOUT_S = 180.0


def demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=["llama-fed"], help="which demo")
    parser.add_argument("--model", type=Path, help="a GGUF model file (default: a generated random-weight one)")
    parser.add_argument("--data-dir", type=Path, help="where the units keep data (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary at the end")


def demo(args: argparse.Namespace) -> int:
    if args.model is not None:
        if not args.model.is_file():
            raise RequestError(f"--model {args.model}: no such file")
        # the model goes to the gateway as one data item: let the embedded gateway take it
        os.environ["PYAO_GATEWAY_MAX_UPLOAD_BYTES"] = str(max(256 << 20, args.model.stat().st_size + (16 << 20)))
    if args.data_dir is None:
        with tempfile.TemporaryDirectory(prefix="pyao-demo-") as tmp:
            args.data_dir = Path(tmp)
            return _demo(args)
    return _demo(args)


def _demo(args: argparse.Namespace) -> int:
    from pyao.cli._up import run_network
    from pyao.testing.postgres import free_ports

    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(4)
    net = argparse.Namespace(
        data_dir=data_dir / "net", wallet=data_dir / "wallet.json", block_seconds=0.5,
        gateway_port=ports[0], su_port=ports[1], cu_port=ports[2], mu_port=ports[3],
    )  # fmt: skip
    gateway_url = f"http://127.0.0.1:{net.gateway_port}"
    summary: dict[str, Any] = {}

    async def then(module_id: str) -> None:
        summary.update(await _run(args, net, module_id, gateway_url))

    # no device objects handed over: the CU builds its configured ones (PYAO_CU_DEVICES, by default
    # weavedrive@1.0 and llm@1.0) in each of its VM workers, as any CU does
    asyncio.run(run_network(net, then=then))
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
    return 0 if summary.get("ok") else 1


def _model_bytes(args: argparse.Namespace, data_dir: Path) -> tuple[bytes, str]:
    if args.model:
        return args.model.read_bytes(), f"model {args.model}"
    from pyao.devices.tinymodel import write_tiny_model

    path = write_tiny_model(data_dir / "tiny-random.gguf")
    print("=" * 78)
    print("NOTE: no --model given. Using a small GENERATED RANDOM-WEIGHT model: the King's")
    print("grades and reasons below are noise from random weights, not judgements. Pass")
    print("--model FILE.gguf (an instruct model) for real ones.")
    print("=" * 78)
    return path.read_bytes(), "a generated random-weight model"


async def _run(args, net, module_id: str, gateway_url: str) -> dict[str, Any]:
    import pyao
    from pyao.data import DataItem, Wallet

    model, what = _model_bytes(args, net.data_dir)
    mu_url, cu_url = f"http://127.0.0.1:{net.mu_port}", f"http://127.0.0.1:{net.cu_port}"
    ruler = Wallet.load(net.wallet)
    async with httpx.AsyncClient(timeout=60) as http:
        scheduler = (await http.get(f"http://127.0.0.1:{net.su_port}/")).json()["address"]
        mu_address = (await http.get(f"{mu_url}/", params={"debug": "1"})).json()["address"]
        item = DataItem.create(model, signer=ruler, tags=[("Content-Type", "application/octet-stream"),
                                                          ("Name", "llama-fed-king-model")])  # fmt: skip
        await _post(http, gateway_url, item)
        print(f"uploaded {what} ({len(model):,} bytes) as /data/{item.id}")
        # an item nobody attests: WeaveDrive must refuse it to the King
        unattested = DataItem.create(b"not attested", signer=ruler, tags=[("Name", "llama-fed-unattested")])
        await _post(http, gateway_url, unattested)
        height = await _attest(http, gateway_url, item.id, ruler)
        print(f"attested /data/{item.id} by {ruler.address} (mined at block {height})")
    citizens = {"A": Wallet.generate(), "B": Wallet.generate()}
    conn = pyao.connect_async(mu_url=mu_url, cu_url=cu_url, gateway_url=gateway_url, signer=ruler)
    async with conn:
        ids = await _spawn_all(conn, module_id, scheduler, mu_address, attestor=ruler.address)
        refusal = await _unattested_refused(conn, ids["king"], unattested.id)
        print(f"WeaveDrive refuses the King an unattested item: {refusal}")
        await _configure(conn, ids, citizens, item.id)
        print(f"payment token {ids['token']}\nFed           {ids['fed']}\nKing          {ids['king']}")
        for who, text in PETITIONS:
            await conn.message(ids["token"], signer=citizens[who], data="", tags=[
                ("Action", "Transfer"), ("Recipient", ids["fed"]), ("Quantity", _units(FEE_WHOLE)),
                ("X-Petition", text)])  # fmt: skip
            print(f"citizen {who} petitions: {text!r}")
        outcome = await _await_outcomes(conn, ids["fed"], expect_granted=2, expect_refused=1)
        balances = {who: await _balance(conn, ids["fed"], w.address) for who, w in citizens.items()}
    # blocking calls off the event loop: the gateway answering them runs on this very loop
    summary = await asyncio.to_thread(_report, outcome, balances, citizens, gateway_url, ids)
    summary.update(model=item.id, attestor=ruler.address, unattested_refused=refusal)
    return summary


async def _post(http: httpx.AsyncClient, gateway_url: str, item) -> None:
    r = await http.post(f"{gateway_url}/tx/arweave", content=item.to_bytes())
    if r.status_code >= 300:
        raise RuntimeError(f"the gateway refused item {item.id}: {r.status_code} {r.text[:200]}")


async def _attest(http: httpx.AsyncClient, gateway_url: str, item_id: str, signer) -> int:
    """``pyao attest ID --wait``: post the attestation and wait until it is in a block (only an
    attestation at or below a message's Block-Height counts). Returns that block's height."""
    from pyao.cli._attest import attestation_items

    [attestation] = attestation_items(item_id, signer)
    await _post(http, gateway_url, attestation)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        r = await http.get(f"{gateway_url}/tx/{attestation.id}/status")
        if r.status_code == 200:
            return int(r.json()["block_height"])
        await asyncio.sleep(0.25)
    raise RuntimeError(f"the attestation {attestation.id} was not mined in {TIMEOUT_S:.0f} s")


async def _spawn_all(conn, module_id: str, scheduler: str, mu_address: str, *, attestor: str) -> dict[str, str]:
    ids = {}
    for role in ("token", "fed", "king"):
        tags = [("Name", f"llama-fed-{role}"), ("Authority", mu_address)]
        if role == "king":  # the King reads its model through WeaveDrive, attested by the demo's wallet
            tags += [("Extension", "WeaveDrive"), ("Attestor", attestor)]
        ids[role] = await conn.spawn(module_id, scheduler, tags=tags)
    return ids


async def _unattested_refused(conn, king: str, item_id: str) -> str:
    """The King tries to load an item nobody attested: WeaveDrive's error, which must come."""
    mid = await conn.message(king, tags=[("Action", "Eval")], data=f'require("llama").load("/data/{item_id}")')
    error = (await conn.result(mid, king)).get("Error")
    if not error:
        raise RuntimeError(f"the King loaded /data/{item_id}, which nobody attested: WeaveDrive's rules did not hold")
    return str(error)


def _units(whole: int) -> str:
    return str(whole * 10**12)


async def _configure(conn, ids: dict[str, str], citizens: dict, model_id: str) -> None:
    grants = "".join(f'Balances["{w.address}"] = "{_units(10)}"\n' for w in citizens.values())
    setups = {
        "token": f'Name = "Petition Coin"; Ticker = "PETI"\nrequire("blueprints.token")\n{grants}'
        f'TotalSupply = require("decimal").add(TotalSupply, "{_units(10 * len(citizens))}")',
        "fed": f'require("blueprints.llama_fed").fed({{ payment_token = "{ids["token"]}", king = "{ids["king"]}", '
        f'fee = "{_units(FEE_WHOLE)}" }})',
        "king": f'require("blueprints.llama_fed").king({{ fed = "{ids["fed"]}", model = "/data/{model_id}" }})',
    }
    for role, code in setups.items():
        mid = await conn.message(ids[role], tags=[("Action", "Eval")], data=code)
        result = await conn.result(mid, ids[role])
        if result.get("Error"):
            raise RuntimeError(f"setting up the {role} failed: {result['Error']}")


def _tags(m: dict) -> dict[str, str]:
    return {t["name"]: t["value"] for t in m.get("Tags", [])}


async def _await_outcomes(conn, fed: str, *, expect_granted: int, expect_refused: int) -> dict[str, list]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        page = await conn.results(fed, sort="DESC", limit=100)
        granted, refused = [], []
        for edge in page["edges"]:
            for m in edge["node"].get("Messages", []):
                tags = _tags(m)
                if tags.get("Action") == "Petition-Granted":
                    granted.append({"to": m["Target"], "grade": int(tags["Grade"]), "minted": tags["Quantity"],
                                    "answer": tags.get("King-Answer", ""), "reason": m.get("Data", "")})  # fmt: skip
                elif tags.get("Action") == "Petition-Refused":
                    refused.append({"to": m["Target"], "reason": tags.get("Reason", "")})
        if len(granted) >= expect_granted and len(refused) >= expect_refused:
            return {"granted": granted, "refused": refused}
        if time.monotonic() > deadline:
            raise RuntimeError(f"the Fed did not answer every petition in {TIMEOUT_S:.0f} s: {granted} {refused}")
        await asyncio.sleep(0.5)


async def _balance(conn, fed: str, address: str) -> str:
    r = await conn.dryrun(fed, tags=[("Action", "Balance"), ("Recipient", address)])
    return str(r["Messages"][0]["Data"])


def _await_records(find_records, gateway_url: str, content: bytes, timeout: float = 60.0) -> list:
    """The CU uploads provenance records from its VM workers after each evaluation: wait for them."""
    deadline = time.monotonic() + timeout
    while not (found := find_records(gateway_url, content)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def _report(outcome, balances, citizens, gateway_url: str, ids) -> dict[str, Any]:
    from pyao.provenance import find_records

    who = {w.address: name for name, w in citizens.items()}
    print("\nThe Fed's answers (from its results):")
    records = {}
    for g in outcome["granted"]:
        print(f"  citizen {who.get(g['to'], g['to'])}: grade {g['grade']}, minted {int(g['minted']) / 10**12:g} "
              f"LLAMA; the King says: {g['reason']!r}")  # fmt: skip
        found = _await_records(find_records, gateway_url, g["answer"].encode())
        records[g["answer"]] = [r.__dict__ for r in found]
        for r in found:
            print(f"    provenance record {r.id}: model {r.model}, message {r.message} of process {r.process}")
    for r in outcome["refused"]:
        print(f"  citizen {who.get(r['to'], r['to'])}: refunded: {r['reason']}")
    print("Balances of LLAMA: " + ", ".join(f"{k}={int(v) / 10**12:g}" for k, v in balances.items()))
    ok = len(outcome["granted"]) == 2 and len(outcome["refused"]) == 1 and all(records.values())
    return {
        "ok": ok, "processes": ids, "granted": outcome["granted"], "refused": outcome["refused"],
        "balances": balances, "citizens": {k: w.address for k, w in citizens.items()}, "provenance": records,
    }  # fmt: skip


__all__ = ["demo", "demo_arguments"]
