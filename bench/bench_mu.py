"""End to end through the messenger unit: signed submission to result available, on ``pyao up``.

The network is one real ``pyao up`` subprocess (gateway, SU, CU and MU in one process, SQLite,
loopback HTTP), exactly as a user starts it. A load generator in this process publishes a small
native-Lua module (one ``Count`` handler, no outbox), spawns 1 or 1,000 processes through the MU
and evaluates each once (untimed warm-up), then, for each process count, measures in one run:

* **SU bare** (reference): the same kind of pre-signed message posted straight to the SU
  (``POST /``), i.e. scheduling alone, the first half of the MU's path;
* **CU bare** (reference): the CU evaluating exactly those scheduled messages (the time until
  the result of each process's last one is readable);
* **end to end**: pre-signed messages posted to the MU (``POST /`` → 202: verified, scheduled on
  the SU, crank recorded) until the result of each process's last message is available from
  the CU; also the time until the MU's own crank queue (fetch every result, push its empty
  outbox) is drained;
* **latency** at half the end-to-end rate: an open-loop stream, each message timed from its
  submission to its result (``GET /result``) answered; p50 / p99.

The ratio column is end to end over the slower of the two references measured in the same run
(the MU path can be no faster than scheduling plus evaluation done back to back). The CPU
columns are the ``pyao up`` process's CPU time (all threads) per message in each phase: the
end-to-end figure less the two references is what the MU itself (and its cranking) costs.

The default is 10,000 messages a run: a rate held for several seconds. With 1,000 processes a
short run measures its own end more than the rate: 2,000 messages are two a process, and the
reads that show every process's last result (one a process) are then half as many requests as
the messages, made after the submissions, while the crank backlog drains.

    python bench/bench_mu.py [--messages 10000] [--processes 1,1000] [--connections 32] [--latency-seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_su import Conn

from pyao.data import DataItem, Ed25519Signer, ao
from pyao.testing.network import running_network
from pyao.vm.lua import LUA_NATIVE_FORMAT

USER = Ed25519Signer.from_seed(bytes([44]) * 32)
#: a pooled connection idle longer than this is replaced (uvicorn closes idle ones after 5 s)
KEEP_ALIVE_S = 4.0
MODULE = b"""
Handlers.add("count", "Count", function(msg) Counted = (Counted or 0) + 1 end)
"""


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def network_pid(data_dir: Path) -> int:
    """The ``pyao up`` process serving ``data_dir`` (found by its command line)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"up" in argv and str(data_dir).encode() in argv:
                return int(entry.name)
    raise RuntimeError(f"no pyao up process for {data_dir}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Signed:
    """Pre-signed messages, so signing is not in the timed windows."""

    serials = itertools.count(1)  # one sequence for every batch: Ed25519 is deterministic, ids must differ

    def __init__(self, pids: list[str]) -> None:
        self.pids = pids

    def batch(self, count: int) -> list[tuple[str, str, bytes]]:
        out = []
        for i in range(count):
            serial = next(self.serials)
            pid = self.pids[i % len(self.pids)]
            item = DataItem.create(
                b"x" * 32, signer=USER, tags=ao.message_tags([("Action", "Count")]), target=pid,
                anchor=f"{serial:032d}",
            )  # fmt: skip
            out.append((pid, item.id, item.to_bytes()))
        return out


async def post_all(port: int, bodies: list[bytes], connections: int, ok_status: int) -> float:
    """Post every body over ``connections`` keep-alive connections; seconds taken."""
    conns = [await Conn.open(port) for _ in range(connections)]
    queue = list(reversed(bodies))

    async def worker(conn: Conn) -> None:
        while queue:
            status, body = await conn.request("POST", "/", queue.pop())
            if status != ok_status:
                raise RuntimeError(f"{status} {body[:300]!r}")

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return elapsed


async def results_of(cu_port: int, last: dict[str, str], connections: int) -> None:
    """GET each process's last message's result (the CU evaluates everything up to it)."""
    conns = [await Conn.open(cu_port) for _ in range(min(connections, len(last)))]
    queue = list(last.items())

    async def worker(conn: Conn) -> None:
        while queue:
            pid, mid = queue.pop()
            status, body = await conn.request("GET", f"/result/{mid}?process-id={pid}")
            if status != 200 or b'"error"' in body[:20]:
                raise RuntimeError(f"result {mid}: {status} {body[:300]!r}")

    await asyncio.gather(*(worker(c) for c in conns))
    for c in conns:
        c.close()


def last_per_process(batch: list[tuple[str, str, bytes]]) -> dict[str, str]:
    return {pid: mid for pid, mid, _ in batch}


async def mu_drained(mu: str, timeout: float = 300.0) -> None:
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = (await client.get(mu + "/", params={"debug": "1"})).json()
            if status["jobs"].get("pending", 0) == 0 and status["running"] == 0:
                return
            await asyncio.sleep(0.02)
    raise RuntimeError("the MU did not drain its queue")


async def latency(mu_port: int, cu_port: int, batch: list[tuple[str, str, bytes]], rate: float) -> list[float]:
    """Open loop: message i is submitted at i / rate seconds, each timed to its result, over a pool
    of keep-alive connections (as a client such as aoconnect keeps them); a message that finds no
    free connection opens one, and a connection idle for longer than the server keeps one open
    (uvicorn: 5 s) is replaced, as an HTTP client's pool does."""
    out: list[float] = []
    opened = time.perf_counter()
    pool = [(await Conn.open(mu_port), await Conn.open(cu_port), opened) for _ in range(32)]
    started = time.perf_counter()

    async def one(i: int, pid: str, mid: str, raw: bytes) -> None:
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        t0 = time.perf_counter()
        mu, cu, used = pool.pop() if pool else (await Conn.open(mu_port), await Conn.open(cu_port), t0)
        if t0 - used > KEEP_ALIVE_S:
            mu.close()
            cu.close()
            mu, cu = await Conn.open(mu_port), await Conn.open(cu_port)
        status, body = await mu.request("POST", "/", raw)
        if status != 202:
            raise RuntimeError(f"MU {status} {body[:200]!r}")
        status, body = await cu.request("GET", f"/result/{mid}?process-id={pid}")
        if status != 200:
            raise RuntimeError(f"CU {status} {body[:200]!r}")
        done = time.perf_counter()
        out.append(done - t0)
        pool.append((mu, cu, done))

    await asyncio.gather(*(one(i, *entry) for i, entry in enumerate(batch)))
    for mu, cu, _ in pool:
        mu.close()
        cu.close()
    return out


async def setup(net, processes: int, connections: int) -> list[str]:
    async with httpx.AsyncClient(timeout=60) as client:
        module = DataItem.create(MODULE, signer=USER, tags=ao.module_tags(LUA_NATIVE_FORMAT, content_type="text/x-lua"))
        (await client.post(net.gateway + "/tx/arweave", content=module.to_bytes())).raise_for_status()
        scheduler = (await client.get(net.su + "/")).json()["address"]
        mu_address = (await client.get(net.mu + "/", params={"debug": "1"})).json()["address"]
    spawns = [
        DataItem.create(
            b"x", signer=USER, tags=ao.process_tags(module.id, scheduler, [("N", str(n))], authorities=[mu_address]),
        )
        for n in range(processes)
    ]  # fmt: skip
    await post_all(port_of(net.mu), [s.to_bytes() for s in spawns], connections, 202)
    pids = [s.id for s in spawns]
    # warm-up: every process evaluated once (its VM built), none of it timed
    warm = Signed(pids).batch(processes)
    await post_all(port_of(net.su), [raw for _, _, raw in warm], connections, 200)
    await results_of(port_of(net.cu), last_per_process(warm), connections)
    await mu_drained(net.mu)
    return pids


def worker_cpu_seconds(server: int) -> float:
    """CPU time of the ``pyao up`` process's children (its VM workers); NaN where Linux does not say."""
    try:
        children = Path(f"/proc/{server}/task/{server}/children").read_text().split()
        return sum(cpu_seconds(int(pid)) for pid in children)
    except OSError:
        return float("nan")


async def run(
    net, processes: int, messages: int, connections: int, latency_seconds: float, references: bool = True
) -> dict:
    pids = await setup(net, processes, connections)
    signed = Signed(pids)
    su_port, cu_port, mu_port = port_of(net.su), port_of(net.cu), port_of(net.mu)
    server = network_pid(net.data_dir)
    if not references:
        return await end_to_end(net, server, signed, messages, connections) | {"processes": processes}

    # references: scheduling alone, then evaluation alone, of the same messages
    bare = signed.batch(messages)
    cpu = cpu_seconds(server)
    su_seconds = await post_all(su_port, [raw for _, _, raw in bare], connections, 200)
    su_cpu, cpu = cpu_seconds(server) - cpu, cpu_seconds(server)
    started = time.perf_counter()
    await results_of(cu_port, last_per_process(bare), connections)
    cu_seconds = time.perf_counter() - started
    cu_cpu = cpu_seconds(server) - cpu

    e2e = await end_to_end(net, server, signed, messages, connections)
    rate = e2e["e2e"]
    stream = signed.batch(max(20, int(rate / 2 * latency_seconds)))
    await mu_drained(net.mu)
    lat = sorted(await latency(mu_port, cu_port, stream, rate / 2))
    return e2e | {
        "processes": processes,
        "su_bare": messages / su_seconds,
        "cu_bare": messages / cu_seconds,
        # CPU of the pyao up process per message, ms (all threads)
        "su_cpu_ms": 1000 * su_cpu / messages,
        "cu_cpu_ms": 1000 * cu_cpu / messages,
        "latency_rate": rate / 2,
        "latency_count": len(lat),
        "p50_ms": 1000 * statistics.median(lat),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
    }


async def end_to_end(net, server: int, signed: Signed, messages: int, connections: int) -> dict:
    """Pre-signed messages through the MU until each process's last result is readable, then until
    the MU's crank queue is drained; CPU a message of ``pyao up`` (all threads) and of its VM workers."""
    batch = signed.batch(messages)
    cpu, workers = cpu_seconds(server), worker_cpu_seconds(server)
    started = time.perf_counter()
    submit_seconds = await post_all(port_of(net.mu), [raw for _, _, raw in batch], connections, 202)
    await results_of(port_of(net.cu), last_per_process(batch), connections)
    e2e_seconds = time.perf_counter() - started
    await mu_drained(net.mu)
    drained_seconds = time.perf_counter() - started
    return {
        "messages": messages,
        "submit": messages / submit_seconds,
        "e2e": messages / e2e_seconds,
        "drained": messages / drained_seconds,
        "e2e_cpu_ms": 1000 * (cpu_seconds(server) - cpu) / messages,
        "workers_cpu_ms": 1000 * (worker_cpu_seconds(server) - workers) / messages,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--processes", default="1,1000")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--json", action="store_true", help="also print each row as JSON")
    parser.add_argument(
        "--e2e-only", action="store_true", help="only the end-to-end phase (quick A/B runs): no references, no latency"
    )
    args = parser.parse_args()
    rows = []
    for processes in (int(p) for p in args.processes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-mu-") as tmp, running_network(Path(tmp), timeout=60) as net:
            rows.append(
                asyncio.run(
                    run(net, processes, args.messages, args.connections, args.latency_seconds, not args.e2e_only)
                )
            )
        if args.json:
            print(json.dumps(rows[-1]))
    if args.e2e_only:
        print("| processes | MU accepts msg/s | end to end msg/s | MU queue drained msg/s | CPU ms/msg: up, workers |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['processes']} | {r['submit']:,.0f} | {r['e2e']:,.0f} | {r['drained']:,.0f} "
                f"| {r['e2e_cpu_ms']:.2f}, {r['workers_cpu_ms']:.2f} |"
            )
        return
    print(
        "| processes | SU bare msg/s | CU bare msg/s | MU accepts msg/s | end to end msg/s | MU queue drained msg/s "
        "| ratio e2e / min(SU, CU) | p50 / p99 ms at half load | CPU ms/msg: SU, CU, e2e (+ VM workers) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        reference = min(r["su_bare"], r["cu_bare"])
        print(
            f"| {r['processes']} | {r['su_bare']:,.0f} | {r['cu_bare']:,.0f} | {r['submit']:,.0f} | {r['e2e']:,.0f} "
            f"| {r['drained']:,.0f} | {r['e2e'] / reference:.2f}x "
            f"| {r['p50_ms']:.0f} / {r['p99_ms']:.0f} (at {r['latency_rate']:,.0f}/s, n={r['latency_count']}) "
            f"| {r['su_cpu_ms']:.1f}, {r['cu_cpu_ms']:.1f}, {r['e2e_cpu_ms']:.2f} (+ {r['workers_cpu_ms']:.2f}) |"
        )


if __name__ == "__main__":
    main()
