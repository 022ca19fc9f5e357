"""WeaveDrive read throughput against a local file and against raw HTTP Range reads of the same bytes.

One item (``--mib`` MiB, default 64) is stored on pyao's gateway (SQLite, served on
loopback) and written to a local file. Side by side in one run:

* random 4 KiB reads at random offsets:
  - local: ``os.pread`` on the file;
  - http: one ``GET /raw/{id}`` with ``Range`` per read (a fresh pooled client);
  - drive cold: ``DataFile.read`` on a new drive (every read a cache miss → one
    64 KiB block per request);
  - drive warm: the same reads again once the item is in the block cache;
  - lua warm: ``f:seek('set', o); f:read(4096)`` inside a native Lua process.
* sequential reads of the whole item in 1 MiB pieces: local ``read``, raw HTTP
  Range requests of 1 MiB each, and a cold drive (read-ahead grows to 4 MiB per
  request).

Goals (issue 7): drive random reads >= 0.5x the local file; the ratios against
raw HTTP show what the cache and read-ahead cost or save.

    python bench/bench_weavedrive.py [--mib 64] [--reads 20000] [--http-reads 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pyao.abc import Limits, ModuleSource, ProcessContext
from pyao.data import DataItem, Ed25519Signer
from pyao.devices import GatewayReader, WeaveDrive
from pyao.testing.postgres import free_port
from pyao.vm import LUA_NATIVE_FORMAT, vm_for

MiB = 1024 * 1024
SIGNER = Ed25519Signer.from_seed(bytes([41]) * 32)


def _setup(gw: str, payload: bytes) -> tuple[str, ProcessContext]:
    data = DataItem.create(payload, signer=SIGNER)
    module = DataItem.create(
        b"", signer=SIGNER, tags=[("Module-Format", LUA_NATIVE_FORMAT), ("Type", "Module"), ("Extension", "WeaveDrive")]
    )
    attest = DataItem.create(
        b"", signer=SIGNER, tags=[("Data-Protocol", "ao"), ("Type", "Attestation"), ("Message", data.id)]
    )
    with httpx.Client(base_url=gw, timeout=300) as c:
        for it in (data, module, attest):
            assert c.post("/tx/arweave", content=it.to_bytes()).status_code == 200
        assert c.post("/mine").status_code == 200
    proc = ProcessContext("P" * 43, SIGNER.address, (("Module", module.id), ("Attestor", SIGNER.address)))
    return data.id, proc


def _show(label: str, ops: int, nbytes: int, seconds: float) -> float:
    print(f"  {label:<30} {ops / seconds:>10,.0f} reads/s  {nbytes / seconds / MiB:>8,.1f} MiB/s")
    return ops / seconds


def _best(rounds: int, sides: dict) -> dict:
    """Each side's best time over ``rounds`` alternating rounds (noise hits every side alike)."""
    best = dict.fromkeys(sides, float("inf"))
    for _ in range(rounds):
        for name, fn in sides.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def random_reads(gw, item_id, proc, path: Path, size: int, reads: int, http_reads: int, rounds: int) -> None:
    rng = random.Random(1)
    offsets = [rng.randrange(0, size - 4096) for _ in range(reads)]
    few = offsets[:http_reads]
    print(f"random 4 KiB reads ({reads:,} per round, best of {rounds}; http and cold: {http_reads:,} once)")
    fd = os.open(path, os.O_RDONLY)
    expect = [os.pread(fd, 4096, o) for o in offsets[:200]]

    with httpx.Client(base_url=gw, timeout=60) as c:
        start = time.perf_counter()
        for o in few:
            assert len(c.get(f"/raw/{item_id}", headers={"range": f"bytes={o}-{o + 4095}"}).content) == 4096
        http_s = time.perf_counter() - start
    drive = WeaveDrive(GatewayReader(gw), cache_bytes=max(64 * MiB, size + MiB))
    f = drive.open(f"/data/{item_id}", proc, {"Block-Height": 10**6})
    start = time.perf_counter()
    for o in few:
        f.read(o, 4096)
    cold_s = time.perf_counter() - start
    for o in range(0, size, 64 * 1024):  # the whole item into the cache
        f.read(o, 1)
    assert [f.read(o, 4096) for o in offsets[:200]] == expect

    lua = _lua_process(drive, proc)
    best = _best(
        rounds,
        {
            "local": lambda: [os.pread(fd, 4096, o) for o in offsets],
            "drive": lambda: [f.read(o, 4096) for o in offsets],
            "lua": lambda: lua(item_id, offsets),
        },
    )
    os.close(fd)
    local = _show("local file (os.pread)", reads, reads * 4096, best["local"])
    http_rate = _show("raw HTTP Range (one per read)", http_reads, http_reads * 4096, http_s)
    cold = _show("drive cold (cache misses)", http_reads, http_reads * 4096, cold_s)
    warm = _show("drive warm (cache hits)", reads, reads * 4096, best["drive"])
    in_lua = _show("lua io warm (seek + read)", reads, reads * 4096, best["lua"])
    print(
        f"  ratios: drive warm / local = {warm / local:.2f} (goal >= 0.5); lua warm / local = {in_lua / local:.2f}; "
        f"drive cold / raw HTTP = {cold / http_rate:.2f}"
    )
    drive.close()


def _lua_process(drive, proc):
    """A native Lua process on ``drive``; the returned call reads 4 KiB at each offset inside it."""
    module = ModuleSource("M" * 43, SIGNER.address, (("Module-Format", LUA_NATIVE_FORMAT),), b"")
    vm = vm_for(LUA_NATIVE_FORMAT, {"weavedrive@1.0": drive})
    instance = vm.instantiate(module, proc, Limits(compute=10**11, memory=512 * MiB))
    env = {
        "Process": {"Id": proc.id, "Owner": proc.owner, "Tags": [{"name": n, "value": v} for n, v in proc.tags]},
        "Module": {"Id": module.id, "Owner": module.owner, "Tags": []},
    }
    base = {
        "From": SIGNER.address,
        "Owner": SIGNER.address,
        "Target": proc.id,
        "Timestamp": 1,
        "Block-Height": 10**6,
        "Epoch": 0,
        "Hash-Chain": "h",
        "Cron": False,
        "Read-Only": False,
        "Signature": "s",
        "Anchor": "",
    }
    boot = {**base, "Id": proc.id, "Nonce": 0, "Data": "", "Tags": [{"name": "Type", "value": "Process"}]}
    assert instance.handle(boot, env).error is None
    nonce = [0]

    def run(item_id: str, offsets: list[int]) -> None:
        nonce[0] += 1
        code = (
            f"local f = io.open('/data/{item_id}') local n = 0 for _, o in ipairs(Offsets) do "
            "f:seek('set', o) n = n + #f:read(4096) end return n"
        )
        if nonce[0] == 1:  # the offsets once, as state, so a round times only the reads
            listing = ",".join(map(str, offsets))
            msg = {
                **base,
                "Id": "o" * 43,
                "Nonce": 1,
                "Data": f"Offsets = {{{listing}}}",
                "Tags": [{"name": "Action", "value": "Eval"}],
            }
            assert instance.handle(msg, env).error is None
            nonce[0] += 1
        msg = {
            **base,
            "Id": f"{nonce[0]:043d}",
            "Nonce": nonce[0],
            "Data": code,
            "Tags": [{"name": "Action", "value": "Eval"}],
        }
        result = instance.handle(msg, env)
        assert result.error is None and result.output["data"] == str(4096 * len(offsets)), result.error

    return run


def sequential(gw, item_id, proc, path: Path, size: int, rounds: int) -> None:
    print(f"sequential reads of {size // MiB} MiB in 1 MiB pieces (best of {rounds}; the drive starts cold each round)")
    pieces = range(0, size, MiB)
    client = httpx.Client(base_url=gw, timeout=60)

    def local_read():
        with open(path, "rb", buffering=0) as fh:
            while fh.read(MiB):
                pass

    def http():
        for o in pieces:
            span = f"bytes={o}-{min(size, o + MiB) - 1}"
            assert len(client.get(f"/raw/{item_id}", headers={"range": span}).content) == min(MiB, size - o)

    def drive_read():
        drive = WeaveDrive(GatewayReader(gw))
        f = drive.open(f"/data/{item_id}", proc, {"Block-Height": 10**6})
        for o in pieces:
            f.read(o, MiB)
        drive.close()

    best = _best(rounds, {"local": local_read, "http": http, "drive": drive_read})
    client.close()
    local = _show("local file (read)", len(pieces), size, best["local"])
    http_rate = _show("raw HTTP Range (1 MiB each)", len(pieces), size, best["http"])
    cold = _show("drive cold (read-ahead)", len(pieces), size, best["drive"])
    print(f"  ratios: drive / local = {cold / local:.3f}; drive / raw HTTP = {cold / http_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--reads", type=int, default=20000)
    parser.add_argument("--http-reads", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds; each side's best counts")
    args = parser.parse_args()
    size = args.mib * MiB
    payload = random.Random(2).randbytes(size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "item.bin"
        path.write_bytes(payload)
        with _gateway_process(Path(tmp)) as gw:
            item_id, proc = _setup(gw, payload)
            del payload
            random_reads(gw, item_id, proc, path, size, args.reads, args.http_reads, args.rounds)
            sequential(gw, item_id, proc, path, size, args.rounds)


@contextlib.contextmanager
def _gateway_process(tmp: Path):
    """pyao's gateway in its own OS process (as a CU meets it), on a free loopback port."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "pyao.cli",
        "gateway",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp}/gw.db",
        "--block-seconds",
        "0",
    ]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/info", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
