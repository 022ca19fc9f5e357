"""SU throughput: sustained assignments per second with durable commits, over loopback HTTP.

The SU runs as a real ``pyao su`` subprocess (ed25519 wallet) on SQLite (WAL,
synchronous=FULL) or PostgreSQL (a throwaway server, fsync on). A load
generator in this process posts pre-signed messages over ``--connections``
keep-alive HTTP/1.1 connections (a minimal raw client, so the generator costs
little CPU) to 1 or 100 processes; each 200 means the slot was committed
durably. The SU uploads every slot to a stub gateway running in a thread here
(it acknowledges uploads without storing them), so upload work is included.

Also reported, from the same run:

* page reads: ``GET /{pid}?process-id=&limit=1000`` walked over the whole
  schedule (entries/s, JSON rendered);
* references: the same database's one-row-per-transaction durable commit rate
  (what a design without group commit could reach at best), and the SU's bare
  per-message crypto (verify the item, sign its assignment, and a share of the
  upload bundle's signature: one per 128 slots) on one core.

    python bench/bench_su.py [--messages 20000] [--connections 64] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pyao.data import DataItem, Ed25519Signer, ao
from pyao.testing.postgres import TemporaryPostgres, free_port
from pyao.testing.servers import serve_app

PYAO = str(Path(sys.executable).with_name("pyao"))
USER = Ed25519Signer.from_seed(bytes([33]) * 32)


# ---------------------------------------------------------------- a stub gateway


def stub_gateway() -> Starlette:
    async def info(request: Request) -> JSONResponse:
        return JSONResponse({"height": 1_500_000})

    async def upload(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"id": "ok"})

    async def head(request: Request) -> JSONResponse:
        return JSONResponse({})

    return Starlette(
        routes=[Route("/info", info), Route("/tx/arweave", upload, methods=["POST"]), Route("/{id}", head)]
    )


# ---------------------------------------------------------------- a lean HTTP/1.1 client


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: su\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"Content-Type: application/octet-stream\r\n\r\n" + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return int(status_line.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


# ---------------------------------------------------------------- the runs


def start_su(port: int, db: str, gateway: str, tmp: Path) -> subprocess.Popen:
    args = [PYAO, "su", "--port", str(port), "--db", db, "--gateway-url", gateway, "--wallet", str(tmp / "w.json")]
    proc = subprocess.Popen([*args, "--data-dir", str(tmp)], stdout=subprocess.DEVNULL)
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the SU did not start")


async def run_load(port: int, address: str, processes: int, messages: int, connections: int) -> dict:
    conns = [await Conn.open(port) for _ in range(connections)]
    pids = []
    for n in range(processes):
        item = DataItem.create(b"", signer=USER, tags=ao.process_tags("m" * 43, address, [("N", str(n))]))
        status, body = await conns[0].request("POST", "/", item.to_bytes())
        assert status == 200, body
        pids.append(item.id)
    bodies = [
        DataItem.create(b"x" * 64, signer=USER, tags=ao.message_tags([("I", str(i))]), target=pids[i % processes])
        .to_bytes()
        for i in range(messages)
    ]  # fmt: skip
    queue = list(reversed(bodies))
    ok = [0]

    async def worker(conn: Conn) -> None:
        while queue:
            status, body = await conn.request("POST", "/", queue.pop())
            if status != 200:
                raise RuntimeError(f"{status} {body[:200]!r}")
            ok[0] += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    elapsed = time.perf_counter() - started
    read_started = time.perf_counter()
    read = 0
    for pid in pids[: min(len(pids), 5)]:
        cursor = None
        while True:
            path = f"/{pid}?process-id={pid}&limit=1000" + (f"&from={cursor}" if cursor else "")
            status, body = await conns[0].request("GET", path)
            assert status == 200
            page = httpx.Response(200, content=body).json()
            read += len(page["edges"])
            if not page["page_info"]["has_next_page"]:
                break
            cursor = page["edges"][-1]["cursor"]
    read_elapsed = time.perf_counter() - read_started
    for c in conns:
        c.close()
    return {"rate": ok[0] / elapsed, "read_rate": read / read_elapsed, "read": read}


def reference_commit_rate(db: str, seconds: float = 2.0) -> float:
    """One INSERT per durable transaction: the bound without group commit."""
    count, deadline = 0, time.perf_counter() + seconds
    started = time.perf_counter()
    if db.startswith("sqlite"):
        conn = sqlite3.connect(db[len("sqlite://") :] + ".ref", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER, b BLOB)")
        while time.perf_counter() < deadline:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?, ?)", (count, b"x" * 600))
            conn.execute("COMMIT")
            count += 1
    else:
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS ref_t (a BIGINT, b BYTEA)")
            while time.perf_counter() < deadline:
                with conn.transaction():
                    conn.execute("INSERT INTO ref_t VALUES (%s, %s)", (count, b"x" * 600))
                count += 1
    return count / (time.perf_counter() - started)


def reference_cpu_rate(count: int = 2048) -> float:
    """The SU's unavoidable crypto per message, on one core: verify, sign the assignment, and
    1/128 of an upload bundle (one SU signature over 128 slots)."""
    from pyao.su._core import MESSAGE, build_entry, next_slot
    from pyao.su._uploader import upload_body

    su = Ed25519Signer.generate()
    pid = DataItem.create(b"", signer=USER, tags=ao.process_tags("m" * 43, su.address)).id
    raws = [
        DataItem.create(b"x" * 64, signer=USER, tags=ao.message_tags([("I", str(i))]), target=pid).to_bytes()
        for i in range(count)
    ]
    started = time.perf_counter()
    previous = None
    entries = []
    for raw in raws:
        item = DataItem.from_bytes(raw, verify=True)
        previous = build_entry(
            su, next_slot(previous, pid, 1), process_id=pid, block_height=1, kind=MESSAGE,
            message_id=item.id, message=raw,
        )  # fmt: skip
        entries.append(previous)
        if len(entries) == 128:
            upload_body(entries, su)
            entries = []
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--processes", default="1,100")
    args = parser.parse_args()
    cpu = reference_cpu_rate()
    rows = []
    with serve_app(stub_gateway()) as gateway:
        for backend in args.backends.split(","):
            pg = TemporaryPostgres().start() if backend == "postgres" else None
            try:
                for processes in [int(p) for p in args.processes.split(",")]:
                    tmp = Path(tempfile.mkdtemp(prefix="bench-su-"))
                    if pg:
                        db = pg.dsn.rsplit("/", 1)[0] + f"/b{processes}"
                        import psycopg

                        with psycopg.connect(pg.dsn, autocommit=True) as conn:
                            conn.execute(f"CREATE DATABASE b{processes}")
                    else:
                        db = f"sqlite:///{tmp}/su.db"
                    port = free_port()
                    proc = start_su(port, db, gateway, tmp)
                    try:
                        address = httpx.get(f"http://127.0.0.1:{port}/").json()["address"]
                        result = asyncio.run(run_load(port, address, processes, args.messages, args.connections))
                    finally:
                        proc.terminate()
                        proc.wait()
                    result["commit_ref"] = reference_commit_rate(db)
                    rows.append((backend, processes, result))
                    print(f"{backend} {processes}: {result}", file=sys.stderr)
            finally:
                if pg:
                    pg.stop()
    print(f"\nSU on this machine ({os.cpu_count()} cores), {args.messages} messages, {args.connections} connections\n")
    print("| store | processes | assignments/s (durable) | one-commit-per-row ref/s | ratio | page reads entries/s |")
    print("|---|---|---|---|---|---|")
    for backend, processes, r in rows:
        ratio = r["rate"] / r["commit_ref"]
        print(
            f"| {backend} | {processes} | {r['rate']:,.0f} | {r['commit_ref']:,.0f} | {ratio:.1f}x"
            f" | {r['read_rate']:,.0f} |"
        )
    print(f"\nbare per-message crypto (verify + 1 ed25519 signature + 1/128 bundle) on one core: {cpu:,.0f}/s")


if __name__ == "__main__":
    main()
