"""``pyao demo llama-fed [--model FILE.gguf]``: the Llama Fed end to end on the embedded network.

Starts ``pyao up``'s units in this process (fresh data directory, free loopback
ports) with the CU's ``llm@1.0`` device reading models from the gateway and
recording provenance, uploads the model, spawns three processes from the aos
module (a payment token, the Fed, the King; blueprint ``llama_fed``), gives two
citizens payment tokens, and has them petition: citizen A twice on the same day
(the second is refunded), citizen B once. It prints each grade, mint and
reasoning as the Fed's results show them, the balances, and the provenance
record of each of the King's answers. Without ``--model`` it writes a small
random-weight model and says so: its grades are noise, not judgements.

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
    from pyao.config import CUConfig
    from pyao.data import load_or_create_signer
    from pyao.devices.llm import LlmDevice
    from pyao.devices.rawdrive import GatewayRawDrive
    from pyao.provenance import ProvenanceRecorder
    from pyao.testing.postgres import free_ports

    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(4)
    net = argparse.Namespace(
        data_dir=data_dir / "net", wallet=data_dir / "wallet.json", block_seconds=0.5,
        gateway_port=ports[0], su_port=ports[1], cu_port=ports[2], mu_port=ports[3],
    )  # fmt: skip
    gateway_url = f"http://127.0.0.1:{net.gateway_port}"
    (net.data_dir / "cu").mkdir(parents=True, exist_ok=True)
    cu_signer = load_or_create_signer(net.data_dir / "cu" / "wallet.json", CUConfig.from_env().wallet_type)
    recorder = ProvenanceRecorder(gateway_url, cu_signer)
    drive = GatewayRawDrive(gateway_url)
    device = LlmDevice(drive, net.data_dir / "cu" / "models", on_generation=recorder)
    summary: dict[str, Any] = {}

    async def then(module_id: str) -> None:
        summary.update(await _run(args, net, module_id, gateway_url, recorder))

    try:
        asyncio.run(run_network(net, cu_devices={device.name: device}, then=then))
    finally:
        recorder.close()
        drive.close()
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


async def _run(args, net, module_id: str, gateway_url: str, recorder) -> dict[str, Any]:
    import pyao
    from pyao.data import DataItem, Wallet

    model, what = _model_bytes(args, net.data_dir)
    mu_url, cu_url = f"http://127.0.0.1:{net.mu_port}", f"http://127.0.0.1:{net.cu_port}"
    async with httpx.AsyncClient(timeout=60) as http:
        scheduler = (await http.get(f"http://127.0.0.1:{net.su_port}/")).json()["address"]
        mu_address = (await http.get(f"{mu_url}/", params={"debug": "1"})).json()["address"]
        ruler = Wallet.load(net.wallet)
        item = DataItem.create(model, signer=ruler, tags=[("Content-Type", "application/octet-stream"),
                                                          ("Name", "llama-fed-king-model")])  # fmt: skip
        (await http.post(f"{gateway_url}/tx/arweave", content=item.to_bytes())).raise_for_status()
    print(f"uploaded {what} ({len(model):,} bytes) as /data/{item.id}")
    citizens = {"A": Wallet.generate(), "B": Wallet.generate()}
    conn = pyao.connect_async(mu_url=mu_url, cu_url=cu_url, gateway_url=gateway_url, signer=ruler)
    async with conn:
        ids = await _spawn_all(conn, module_id, scheduler, mu_address)
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
    await asyncio.to_thread(recorder.flush)
    return await asyncio.to_thread(_report, outcome, balances, citizens, gateway_url, ids)


async def _spawn_all(conn, module_id: str, scheduler: str, mu_address: str) -> dict[str, str]:
    ids = {}
    for role in ("token", "fed", "king"):
        ids[role] = await conn.spawn(module_id, scheduler, tags=[("Name", f"llama-fed-{role}"),
                                                                 ("Authority", mu_address)])  # fmt: skip
    return ids


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


def _report(outcome, balances, citizens, gateway_url: str, ids) -> dict[str, Any]:
    from pyao.provenance import find_records

    who = {w.address: name for name, w in citizens.items()}
    print("\nThe Fed's answers (from its results):")
    records = {}
    for g in outcome["granted"]:
        print(f"  citizen {who.get(g['to'], g['to'])}: grade {g['grade']}, minted {int(g['minted']) / 10**12:g} "
              f"LLAMA; the King says: {g['reason']!r}")  # fmt: skip
        found = find_records(gateway_url, g["answer"].encode())
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
