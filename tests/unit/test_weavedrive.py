"""weavedrive@1.0 against a real gateway on loopback: paths, access rules, byte ranges, the block cache."""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import tempfile
from pathlib import Path

import pytest

from pyao.abc import ProcessContext
from pyao.config import CUConfig
from pyao.data import b64url_encode
from pyao.devices import DEVICES, BlockCache, GatewayReader, WeaveDrive, build_devices, close_devices, parse_path
from pyao.errors import DeviceAccessDenied, DeviceError, NotFound
from pyao.vm import LUA_NATIVE_FORMAT
from tests._weavedrive import (
    ATTESTOR,
    SCHEDULER,
    STRANGER,
    UPLOADER,
    attestation,
    availability,
    gateway,
    item,
    sample_bytes,
)

SIZE = 300_000  # a few cache blocks, not a multiple of one


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with gateway(tmp_path_factory.mktemp("wd-gw")) as g:
        yield g


@pytest.fixture(scope="module")
def data(gw):
    payload = sample_bytes(SIZE)
    return gw.upload(item(payload)), payload


@pytest.fixture(scope="module")
def modules(gw):
    """Module ids: a plain one, one with Extension: WeaveDrive, one defaulting to Individual."""
    fmt = ("Module-Format", LUA_NATIVE_FORMAT)
    plain = gw.upload(item(b"-- m", tags=[fmt, ("Type", "Module")]))
    ext = gw.upload(item(b"-- m", tags=[fmt, ("Type", "Module"), ("Extension", "WeaveDrive")]))
    indiv = gw.upload(
        item(b"-- m", tags=[fmt, ("Type", "Module"), ("Extension", "WeaveDrive"), ("Availability-Type", "Individual")])
    )
    return {"plain": plain, "ext": ext, "individual": indiv}


@pytest.fixture
def drive(gw):
    d = WeaveDrive(GatewayReader(gw.url), cache_bytes=1 << 20)
    yield d
    d.close()


def proc(module: str, *tags: tuple[str, str]) -> ProcessContext:
    base = (("Type", "Process"), ("Module", module), ("Scheduler", SCHEDULER.address))
    return ProcessContext(id="P" * 43, owner=UPLOADER.address, tags=base + tags)


def at(height: int) -> dict:
    return {"Block-Height": height}


# ------------------------------------------------------------------ paths


def test_paths():
    i = "a" * 43
    assert parse_path(f"/data/{i}") == ("data", i)
    assert parse_path(f"/tx/{i}") == ("tx", i)
    assert parse_path("/block/0") == ("block", "0") and parse_path("/block/1234") == ("block", "1234")
    for bad in [
        "/data/short",
        f"/data/{i}/x",
        f"data/{i}",
        "/etc/passwd",
        "/block/-1",
        "/block/01",
        f"/data/{i}\n",
        f"/headers/{i}",
        "/data/" + "a" * 42 + "!",
        "",
    ]:
        with pytest.raises(DeviceError):
            parse_path(bad)


def test_registry_and_factory(tmp_path):
    assert set(DEVICES) == {"weavedrive@1.0", "llm@1.0"}
    config = CUConfig(gateway_url="http://127.0.0.1:9", data_dir=tmp_path, wallet=tmp_path / "w.json")
    devices = build_devices(config)
    assert isinstance(devices["weavedrive@1.0"], WeaveDrive)
    assert devices["llm@1.0"].models.drive is devices["weavedrive@1.0"]  # models read through the drive
    close_devices(devices)
    with pytest.raises(DeviceError, match=r"list weavedrive@1\.0 before it"):
        build_devices(CUConfig(devices="llm@1.0", data_dir=tmp_path, wallet=tmp_path / "w.json"))
    assert build_devices(CUConfig(devices="")) == {}


def test_without_llama_cpp_the_cu_offers_no_llm_device(tmp_path, monkeypatch):
    """A plain install (no 'ai' extra) still builds its devices: llm@1.0 is left out, not a crash."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    devices = build_devices(CUConfig(data_dir=tmp_path, wallet=tmp_path / "w.json"))
    assert set(devices) == {"weavedrive@1.0"}
    close_devices(devices)
    with pytest.raises(DeviceError, match="unknown device"):
        build_devices(CUConfig(devices="weavedrive@1.0, teleport@9"))


# ------------------------------------------------------------------ access rules


def test_not_enabled_without_the_extension_tag(gw, drive, data, modules):
    data_id, _ = data
    gw.upload(attestation(data_id))
    h = gw.mine()
    p = proc(modules["plain"], ("Attestor", ATTESTOR.address))
    with pytest.raises(DeviceAccessDenied, match="not enabled"):
        drive.open(f"/data/{data_id}", p, at(h))
    with pytest.raises(DeviceAccessDenied, match="not enabled"):
        drive.open(f"/block/{h}", p, at(h))
    # the Extension tag on the process or on its module both enable it
    assert drive.open(f"/data/{data_id}", proc(modules["ext"], ("Attestor", ATTESTOR.address)), at(h)).size == SIZE
    both = proc(modules["plain"], ("Attestor", ATTESTOR.address), ("Extension", "WeaveDrive"))
    assert drive.open(f"/data/{data_id}", both, at(h)).size == SIZE


def test_attestations_count_only_at_or_below_the_block_height(gw, drive, modules):
    target = gw.upload(item(b"secret weights"))
    p = proc(modules["ext"], ("Attestor", ATTESTOR.address))
    h0 = gw.mine()
    with pytest.raises(DeviceAccessDenied, match="not admissible"):
        drive.open(f"/data/{target}", p, at(h0))
    gw.upload(attestation(target, STRANGER))  # not one of the process's attestors
    gw.upload(attestation(target))  # pending: in no block yet
    with pytest.raises(DeviceAccessDenied):
        drive.open(f"/data/{target}", p, at(h0 + 5))
    h1 = gw.mine()
    assert h1 == h0 + 1
    # the answer for an earlier message never changes: the attestation is above its height
    with pytest.raises(DeviceAccessDenied, match=f"Block-Height {h0}"):
        drive.open(f"/data/{target}", p, at(h0))
    fresh = WeaveDrive(GatewayReader(gw.url))  # no memo: the same answer from the gateway
    with pytest.raises(DeviceAccessDenied):
        fresh.open(f"/data/{target}", p, at(h0))
    assert fresh.open(f"/data/{target}", p, at(h1)).read(0, 100) == b"secret weights"
    fresh.close()
    assert drive.open(f"/data/{target}", p, at(h1 + 7)).read(7, 100) == b"weights"
    # a process that names other attestors, or none, is still refused
    with pytest.raises(DeviceAccessDenied):
        drive.open(f"/data/{target}", proc(modules["ext"], ("Attestor", "x" * 43)), at(h1))
    with pytest.raises(DeviceAccessDenied, match="no Block-Height"):
        drive.open(f"/data/{target}", p, {})


def test_the_scheduler_is_an_attestor(gw, drive, modules):
    target = gw.upload(item(b"scheduled"))
    gw.upload(attestation(target, SCHEDULER))
    h = gw.mine()
    assert drive.open(f"/data/{target}", proc(modules["ext"]), at(h)).read(0, 9) == b"scheduled"


def test_individual_mode_accepts_availability_records(gw, drive, modules):
    target = gw.upload(item(b"individual"))
    gw.upload(availability(target))
    h = gw.mine()
    attested = ("Attestor", ATTESTOR.address)
    with pytest.raises(DeviceAccessDenied, match="Assignments"):
        drive.open(f"/data/{target}", proc(modules["ext"], attested), at(h))
    as_process_tag = proc(modules["ext"], attested, ("Availability-Type", "Individual"))
    assert drive.open(f"/data/{target}", as_process_tag, at(h)).size == 10
    assert drive.open(f"/data/{target}", proc(modules["individual"], attested), at(h)).size == 10
    # the process's tag overrides the module's default
    overridden = proc(modules["individual"], attested, ("Availability-Type", "Assignments"))
    with pytest.raises(DeviceAccessDenied):
        WeaveDrive(GatewayReader(gw.url)).open(f"/data/{target}", overridden, at(h))
    # an availability record above the message's height does not count either
    with pytest.raises(DeviceAccessDenied):
        WeaveDrive(GatewayReader(gw.url)).open(f"/data/{target}", as_process_tag, at(h - 1))


def test_unsupported_modes_are_errors(drive, data, modules):
    data_id, _ = data
    with pytest.raises(DeviceError, match="Library"):
        drive.open(f"/data/{data_id}", proc(modules["ext"], ("Availability-Type", "Library")), at(10))
    with pytest.raises(DeviceError, match="Unsupported WeaveDrive mode: Sometimes"):
        drive.open(f"/data/{data_id}", proc(modules["ext"], ("Availability-Type", "Sometimes")), at(10))


def test_on_boot_item_is_admitted(gw, drive, modules):
    boot = gw.upload(item(b"Booted = true"))
    p = proc(modules["plain"], ("On-Boot", boot))  # no Extension tag, no attestation
    assert drive.open(f"/data/{boot}", p, {}).read(0, 100) == b"Booted = true"
    other = gw.upload(item(b"other"))
    with pytest.raises(DeviceAccessDenied):
        drive.open(f"/data/{other}", p, at(gw.height()))


def test_missing_item_is_not_found(gw, drive):
    p = proc("m" * 43, ("On-Boot", "A" * 43))
    with pytest.raises(NotFound):
        drive.open(f"/data/{'A' * 43}", p, at(1))


# ------------------------------------------------------------------ headers


def test_tx_and_block_headers(gw, drive, data, modules):
    data_id, _ = data
    h = gw.mine()
    p = proc(modules["ext"])  # no attestation needed for headers
    tx = json.loads(drive.open(f"/tx/{data_id}", p, at(h)).read(0, 1 << 20))
    assert tx["id"] == data_id and tx["data_size"] == str(SIZE)
    assert tx["ownerAddress"] == UPLOADER.address
    assert tx["ownerAddress"] == b64url_encode(hashlib.sha256(UPLOADER.owner).digest())
    block = json.loads(drive.open(f"/block/{h}", p, at(h)).read(0, 1 << 20))
    assert block["height"] == h
    with pytest.raises(NotFound):
        drive.open(f"/block/{h + 1000}", p, at(h + 1000))
    with pytest.raises(DeviceAccessDenied, match="above the message's Block-Height"):
        drive.open(f"/block/{h}", p, at(h - 1))  # it exists, but not yet as far as that message knows
    with pytest.raises(DeviceAccessDenied, match="no Block-Height"):
        drive.open(f"/block/{h}", p, {})
    with pytest.raises(NotFound):
        drive.open(f"/tx/{'A' * 43}", p, at(h))


# ------------------------------------------------------------------ reading


def test_reads_match_the_data_at_any_offset(gw, drive, data, modules):
    data_id, payload = data
    gw.upload(attestation(data_id))
    h = gw.mine()
    f = drive.open(f"/data/{data_id}", proc(modules["ext"], ("Attestor", ATTESTOR.address)), at(h))
    rng = random.Random(5)
    for _ in range(300):
        off, n = rng.randrange(0, SIZE + 10), rng.choice([0, 1, 4096, 65536, 65537, 200_000])
        assert f.read(off, n) == payload[off : off + n]
    assert f.read(SIZE - 3, 100) == payload[-3:]  # short read at the end
    assert f.read(SIZE, 10) == b"" and f.read(SIZE + 10**12, 10) == b""  # past the end: nothing
    with pytest.raises(DeviceError):
        f.read(-1, 10)


def test_sequential_reads_fetch_ahead_random_reads_do_not(gw, data, modules):
    data_id, payload = data
    gw.upload(attestation(data_id))
    h = gw.mine()
    p = proc(modules["ext"], ("Attestor", ATTESTOR.address))
    d = WeaveDrive(GatewayReader(gw.url), cache_bytes=1 << 20)
    f = d.open(f"/data/{data_id}", p, at(h))
    got = b"".join(f.read(off, 4096) for off in range(0, SIZE, 4096))
    assert got == payload
    # 5 blocks in all; read-ahead takes them in far fewer than 74 requests and fetches each byte once
    assert d.cache.fetched_bytes == SIZE and d.cache.misses <= 3
    d2 = WeaveDrive(GatewayReader(gw.url), cache_bytes=1 << 20)
    g = d2.open(f"/data/{data_id}", p, at(h))
    assert g.read(200_000, 10) == payload[200_000:200_010] and g.read(5, 10) == payload[5:15]
    assert d2.cache.fetched_bytes == 2 * 65536  # one block per random read
    d.close()
    d2.close()


def test_block_cache_is_bounded_and_lru():
    source = sample_bytes(1 << 20, seed=3)
    calls = []

    def fetch(item_id, start, end):
        calls.append((start, end))
        return source[start : end + 1]

    cache = BlockCache(fetch, capacity=4 * 65536, block=65536)
    rng = random.Random(1)
    for _ in range(500):
        off, n = rng.randrange(0, len(source)), rng.randrange(0, 150_000)
        assert cache.read("x", len(source), off, n) == source[off : off + n]
        assert cache.held <= cache.capacity
    calls.clear()
    cache.read("x", len(source), 0, 10)  # block 0 now most recent
    for b in (1, 2, 3):
        cache.read("x", len(source), b * 65536, 10)
    cache.read("x", len(source), 0, 10)  # hit
    cache.read("x", len(source), 4 * 65536, 10)  # evicts block 1, the least recently used
    cache.read("x", len(source), 0, 10)
    cache.read("x", len(source), 2 * 65536, 10)
    n = len(calls)
    cache.read("x", len(source), 1 * 65536, 10)
    assert len(calls) == n + 1  # block 1 was the one dropped
    # a span with holes fetches each run of missing blocks once
    calls.clear()
    cache2 = BlockCache(fetch, capacity=1 << 20, block=65536)
    cache2.read("x", len(source), 2 * 65536, 10)
    assert cache2.read("x", len(source), 0, 5 * 65536) == source[: 5 * 65536]
    assert calls == [(2 * 65536, 3 * 65536 - 1), (0, 2 * 65536 - 1), (3 * 65536, 5 * 65536 - 1)]
    with pytest.raises(ValueError):
        BlockCache(fetch, capacity=10, block=65536)
    # a long miss is split into requests of at most max_fetch bytes, read-ahead included
    calls.clear()
    cache3 = BlockCache(fetch, capacity=1 << 20, block=65536, max_fetch=3 * 65536)
    assert cache3.read("x", len(source), 10, 7 * 65536, ahead=10 * 65536) == source[10 : 10 + 7 * 65536]
    assert [(a // 65536, (b + 1) // 65536) for a, b in calls] == [
        (0, 3),
        (3, 6),
        (6, 9),
    ]  # the last with one block ahead
    assert max(b - a + 1 for a, b in calls) <= 3 * 65536


def test_unreachable_gateway_is_a_device_error():
    d = WeaveDrive(GatewayReader("http://127.0.0.1:9", timeout=2))
    with pytest.raises(DeviceError, match="unreachable"):
        d.open(f"/tx/{'a' * 43}", proc("m" * 43, ("Extension", "WeaveDrive")), at(1))
    d.close()


def _range_ignoring_gateway(payload: bytes):
    """A real HTTP server that answers every /raw request with the whole item (200), ignoring Range."""
    from starlette.applications import Starlette
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Route

    async def raw(request):
        if request.method == "HEAD":
            return Response(b"", headers={"content-length": str(len(payload))})

        async def body():
            for at in range(0, len(payload), 8192):
                yield payload[at : at + 8192]

        return StreamingResponse(body(), headers={"content-length": str(len(payload))})

    return Starlette(routes=[Route("/raw/{id}", raw, methods=["GET", "HEAD"])])


def test_a_gateway_that_ignores_range_is_read_only_as_far_as_needed():
    from pyao.testing.servers import serve_app

    payload = sample_bytes(1 << 20)
    with serve_app(_range_ignoring_gateway(payload)) as url:
        reader = GatewayReader(url)
        assert reader.size("x") == len(payload)
        for start, end in [(0, 9), (100_000, 165_535), (len(payload) - 5, len(payload) - 1)]:
            assert reader.read("x", start, end) == payload[start : end + 1]
        with pytest.raises(DeviceError, match="sent 5 bytes"):
            reader.read("x", len(payload) - 5, len(payload) + 10)
        reader.close()


@contextlib.contextmanager
def serve_app_empty_gateway():
    with tempfile.TemporaryDirectory() as tmp, gateway(Path(tmp)) as g:
        yield g.url


def test_fallback_gateways_answer_in_turn(gw, data, modules):
    """As the official drive: each request tries the gateways in order and takes the first success."""
    data_id, payload = data
    gw.upload(attestation(data_id))
    h = gw.mine()
    dead = "http://127.0.0.1:9"
    d = WeaveDrive(GatewayReader(f"{dead}, {gw.url}"))
    f = d.open(f"/data/{data_id}", proc(modules["ext"], ("Attestor", ATTESTOR.address)), at(h))
    assert f.read(1000, 50) == payload[1000:1050]
    d.close()
    with serve_app_empty_gateway() as empty:  # a real gateway without the item: its 404s fall through
        booted = proc("m" * 43, ("On-Boot", data_id))  # admitted without a GraphQL answer
        d = WeaveDrive(GatewayReader(f"{empty},{gw.url}"))
        assert d.open(f"/data/{data_id}", booted, at(h)).read(5, 5) == payload[5:10]
        d.close()
        only_bad = WeaveDrive(GatewayReader(f"{dead},{empty}"))
        with pytest.raises(DeviceError, match="unreachable"):  # none answers: the first one's failure
            only_bad.open(f"/data/{data_id}", booted, at(h))
        only_bad.close()
    with pytest.raises(DeviceError, match="needs a gateway"):
        GatewayReader(" , ")


def test_block_cache_under_concurrent_readers():
    import threading

    source = sample_bytes(2 << 20, seed=9)
    cache = BlockCache(lambda _i, a, b: source[a : b + 1], capacity=8 * 65536, block=65536)
    errors = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(400):
            off, n = rng.randrange(0, len(source)), rng.choice([1, 4096, 70_000])
            if cache.read("x", len(source), off, n, ahead=rng.choice([0, 131072])) != source[off : off + n]:
                errors.append((off, n))

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and cache.held <= cache.capacity
    assert cache.held == sum(len(b) for b in cache._blocks.values())
