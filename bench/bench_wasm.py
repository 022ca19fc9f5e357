"""WASM VM throughput: token Transfers through a real aos module, ours vs the official ao-loader.

    .venv/bin/python bench/bench_wasm.py --aos /tmp/aowasm/em4.wasm --token /tmp/aowasm/token.lua [-n 300]
    .venv/bin/python bench/bench_wasm.py            (no aos module: the kit rows and snapshots only)

Rows:
* aos token Transfers: the same sequence (process message, aos's token blueprint by Eval, Transfers)
  through our WasmVM and through @permaweb/ao-loader on Node used as the official CU uses it (the
  previous Memory in, a copy of the new Memory out, every message). Ratio = ours / loader.
* the same Transfers in our native Lua VM (pyao's token blueprint) against the WASM aos module.
* kit counter: our VM per message vs a bare wasmtime call of the same ``handle`` (no host work).
* snapshot / restore of a 1 GiB wasm64 memory: grown only (sparse), and filled with random bytes.
The aos binaries are not in the repo: pass their path (see scripts/compare-wasm-loader).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._aos import OWNER, Ours, env, message, module_format, process_message, run_loader, transfer
from tests.unit._wasm import ENV, W64, make, msg

RECIPIENTS = [f"R{i:042d}" for i in range(50)]


def token_plan(token_path: str, n: int) -> tuple[list[dict], int]:
    """(messages, index of the first Transfer)."""
    setup = [
        process_message(),
        message(1, {"Action": "Eval"}, Path(token_path).read_text()),
        message(2, {"Action": "Eval"}, f"Balances['{OWNER}'] = '1000000000'; return 'funded'"),
    ]
    transfers = [transfer(3 + i, RECIPIENTS[i % len(RECIPIENTS)]) for i in range(n)]
    return setup + transfers, len(setup)


def bench_aos(path: str, token: str, n: int) -> list[tuple[str, float, float]]:
    fmt = module_format(path)
    plan, first = token_plan(token, n)
    ours = Ours(path, fmt)
    for m in plan[:first]:
        assert not ours.step(m).get("Error")
    t = time.perf_counter()
    for m in plan[first:]:
        out = ours.step(m)
        assert not out.get("Error") and len(out["Messages"]) >= 2, out
    ours_rate = n / (time.perf_counter() - t)
    loader = run_loader(path, fmt, [{"msg": m, "env": env()} for m in plan], timing=True)
    assert not any(r.get("Error") for r in loader["results"]), loader["results"][:3]
    loader_rate = n / sum(loader["seconds"][first:])
    return [(f"aos token Transfer, {fmt} ({loader['memory'] / 2**20:.0f} MiB memory)", ours_rate, loader_rate)]


def bench_native_lua(n: int) -> float:
    from tests.unit._lua import make_process

    p = make_process(memory=256 << 20, compact_every=16)
    p.boot()
    p.eval("require('blueprints.token'); Balances['" + OWNER + "'] = '1000000000'")
    t = time.perf_counter()
    for i in range(n):
        p.send("", frm=OWNER, Action="Transfer", Recipient=RECIPIENTS[i % len(RECIPIENTS)], Quantity="1")
    return n / (time.perf_counter() - t)


def bench_kit_counter(n: int) -> tuple[float, float]:
    import wasmtime

    from tests.unit._wasm import kit_bytes

    p = make("counter", W64)
    t = time.perf_counter()
    for i in range(n):
        p.handle(msg("Increment", nonce=i + 1), ENV)
    ours = n / (time.perf_counter() - t)

    config = wasmtime.Config()
    config.wasm_memory64 = True
    store = wasmtime.Store(wasmtime.Engine(config))
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, kit_bytes("counter", W64)), [])
    ex = instance.exports(store)
    memory, malloc, free, handle = ex["memory"], ex["malloc"], ex["free"], ex["handle"]
    t = time.perf_counter()
    for i in range(n):
        m = json.dumps(msg("Increment", nonce=i + 1)).encode() + b"\0"
        e = json.dumps(ENV).encode() + b"\0"
        pm, pe = malloc(store, len(m)), malloc(store, len(e))
        memory.write(store, m, pm)
        memory.write(store, e, pe)
        out = handle(store, pm, pe)
        memory.read(store, out, out + 200)
        free(store, pe)
        free(store, pm)
    bare = n / (time.perf_counter() - t)
    return ours, bare


def bench_snapshot_1gib() -> list[tuple[str, float, float]]:
    rows = []
    for label, fill in (("grown, not filled", False), ("filled with random bytes", True)):
        p = make("hog", W64, memory=2 << 30)
        p.handle(msg("Grow", "1024"), ENV)
        if fill:  # as if the module had written every byte (the module's code sits in the first MiB)
            chunk, mem = os.urandom(1 << 20), p._rt.memory
            for off in range(1 << 20, mem.size() - (1 << 20), 1 << 20):
                mem.write(off, chunk)
        p.compact()  # the whole 1 GiB is the base: the snapshot holds the image, not a log to replay
        t = time.perf_counter()
        snap = p.snapshot()
        snap_s = time.perf_counter() - t
        fresh = make("hog", W64, memory=2 << 30)
        t = time.perf_counter()
        fresh.restore(snap)
        restore_s = time.perf_counter() - t
        rows.append((f"1 GiB wasm64 memory, {label}: snapshot {len(snap) / 2**20:.1f} MiB", snap_s, restore_s))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aos", action="append", default=[], help="aos process.wasm (repeatable)")
    ap.add_argument("--token", help="aos blueprints/token.lua")
    ap.add_argument("-n", type=int, default=300, help="Transfers per run")
    args = ap.parse_args()
    if args.aos and args.token:
        print("| workload | ours msg/s | ao-loader msg/s | ours / ao-loader |")
        print("|---|---:|---:|---:|")
        for path in args.aos:
            for label, ours, loader in bench_aos(path, args.token, args.n):
                print(f"| {label} | {ours:,.0f} | {loader:,.1f} | {ours / loader:.1f}x |")
        lua = bench_native_lua(args.n)
        wasm = bench_aos(args.aos[0], args.token, args.n)[0][1]
        print(f"\nnative Lua VM token Transfer: {lua:,.0f}/s; WASM aos: {wasm:,.0f}/s; native / WASM {lua / wasm:.1f}x")
    ours, bare = bench_kit_counter(2000)
    print(f"\nkit counter (wasm64): ours {ours:,.0f} msg/s, bare wasmtime call {bare:,.0f}/s, "
          f"ours / bare {ours / bare:.2f}")  # fmt: skip
    print("\n| memory | snapshot s | restore s |")
    print("|---|---:|---:|")
    for label, snap_s, restore_s in bench_snapshot_1gib():
        print(f"| {label} | {snap_s:.2f} | {restore_s:.2f} |")


if __name__ == "__main__":
    main()
