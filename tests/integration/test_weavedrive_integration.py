"""WeaveDrive end to end over real HTTP: gateway + SU + CU on loopback, a native-Lua process opening files.

The slow test streams a 2 GiB item through a process and checks the host's memory stays bounded. The
gateway's upload path holds an upload in memory (up to 256 MiB), so that item is written straight into
the gateway's SQLite store (a real signed data item, its data generated chunk by chunk and never whole).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import httpx
import pytest

from pyao.data import DataItem, Ed25519Signer, b64url_encode
from pyao.data.deephash import _EMPTY_BLOB, _blob, _blob_tag_digest, _item_prefix, _key_blob
from pyao.gateway import CHUNK_BYTES, open_store
from pyao.gateway._model import ItemRecord, NewItem
from tests._cu import USER, network, tag
from tests._weavedrive import ATTESTOR, attestation, availability, item

MODULE_SOURCE = b"""
Handlers.add("read", "Read", function(msg)
  local f = io.open("/data/" .. msg.File)
  if msg.Seek then f:seek("set", tonumber(msg.Seek)) end
  local s = f:read(tonumber(msg.Count) or "a")
  msg.reply({ Data = s == nil and "<nil>" or s, ["X-Pos"] = tostring(f:seek()), ["X-Size"] = tostring(f:seek("end")) })
  f:close()
end)
Handlers.add("scan", "Scan", function(msg)
  -- stream the whole file in 1 MiB reads; keep only a checksum of one byte per read
  local f, n, acc, piece = io.open("/data/" .. msg.File), 0, 0, tonumber(msg.Piece)
  while true do
    local s = f:read(piece)
    if not s then break end
    n = n + #s
    acc = (acc * 31 + string.byte(s, #s)) % 1000000007
  end
  msg.reply({ Data = n .. " " .. acc })
end)
"""

TEXT = b"line one\nline two\n"


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with network(tmp_path_factory.mktemp("wd-net")) as n:
        yield n


@pytest.fixture(scope="module")
def module_id(net):
    return net.module(MODULE_SOURCE, tags=[("Extension", "WeaveDrive")])


def schedule_heights(net, pid: str) -> dict[str, int]:
    """Message id -> the Block-Height its SU assigned."""
    out, params = {}, {"process-id": pid, "limit": 1000}
    while True:
        page = httpx.get(f"{net.su}/{pid}", params=params, timeout=30).json()
        for e in page["edges"]:
            out[e["node"]["message"]["id"]] = int(tag(e["node"]["assignment"]["tags"], "Block-Height"))
        if not page["page_info"]["has_next_page"]:
            return out
        params["from"] = page["edges"][-1]["cursor"]


def wait_su_height(net, pid: str, at_least: int, timeout: float = 15.0) -> dict:
    """Send probes until the SU stamps messages with ``at_least`` (it polls the gateway's height each
    second); the last probe sent."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = net.send(pid, [("Action", "Probe")])
        if schedule_heights(net, pid)[probe["id"]] >= at_least:
            return probe
        time.sleep(0.3)
    raise AssertionError(f"the SU never reached height {at_least}")


def result(cu, pid: str, sent: dict) -> dict:
    r = cu.get(f"/result/{sent['id']}", params={"process-id": pid}, timeout=600)
    assert r.status_code == 200, r.text
    return r.json()


def reply(res: dict) -> dict:
    assert "Error" not in res, res["Error"]
    (out,) = res["Messages"]
    return out


def mine(net) -> int:
    assert httpx.post(net.gateway + "/mine", timeout=30).status_code == 200
    return int(httpx.get(net.gateway + "/info", timeout=30).json()["height"])


def test_gating_over_http(net, module_id):
    """Allowed, not attested, attested too late, and Individual vs Assignments, judged by each message's height."""
    items = [item(TEXT), item(b"late"), item(b"indiv")]
    for it in items:
        net.upload(it)
    data_ok, data_late, data_indiv = (it.id for it in items)
    net.upload(attestation(data_ok))
    net.upload(availability(data_indiv))
    h0 = mine(net)
    attestor = [("Attestor", ATTESTOR.address)]
    pid = net.spawn(module_id, attestor)
    pid_indiv = net.spawn(module_id, [*attestor, ("Availability-Type", "Individual")])
    wait_su_height(net, pid, h0)
    m_ok = net.send(pid, [("Action", "Read"), ("File", data_ok)])
    m_early = net.send(pid, [("Action", "Read"), ("File", data_late)])  # its attestation comes later
    m_none = net.send(pid, [("Action", "Read"), ("File", data_indiv)])  # Assignments mode: availability ignored
    m_indiv = net.send(pid_indiv, [("Action", "Read"), ("File", data_indiv)])
    net.upload(attestation(data_late))
    h1 = mine(net)
    wait_su_height(net, pid, h1)
    m_after = net.send(pid, [("Action", "Read"), ("File", data_late)])
    heights = schedule_heights(net, pid)
    assert heights[m_early["id"]] < h1 <= heights[m_after["id"]]

    with net.cu() as cu:  # the CU evaluates everything after the late attestation was mined
        assert reply(result(cu, pid, m_ok))["Data"] == TEXT.decode()
        early = result(cu, pid, m_early)
        assert "not admissible" in early["Error"] and early["Messages"] == []
        assert f"Block-Height {heights[m_early['id']]}" in early["Error"]
        assert "not admissible" in result(cu, pid, m_none)["Error"]
        assert reply(result(cu, pid_indiv, m_indiv))["Data"] == "indiv"
        assert reply(result(cu, pid, m_after))["Data"] == "late"
        first = {m["id"]: result(cu, pid, m) for m in (m_ok, m_early, m_none, m_after)}
        # a dry run reads at the height of the last message: the late attestation counts there
        body = {"Target": pid, "Owner": USER.address, "Tags": [{"name": "Action", "value": "Read"},
                                                              {"name": "File", "value": data_late}]}  # fmt: skip
        dry = cu.post("/dry-run", params={"process-id": pid}, json=body, timeout=120)
        assert dry.status_code == 200 and reply(dry.json())["Data"] == "late"
    with net.cu(name="cu2") as cu2:  # a second CU with its own store replays and gives the same answers
        assert {m: result(cu2, pid, {"id": m}) for m in first} == first


def test_seek_and_read_beyond_the_end_over_http(net, module_id):
    text = item(TEXT)
    net.upload(text)
    data_id = text.id
    net.upload(attestation(data_id))
    h = mine(net)
    pid = net.spawn(module_id, [("Attestor", ATTESTOR.address)])
    wait_su_height(net, pid, h)
    n = len(TEXT)
    sends = {
        "middle": net.send(pid, [("Action", "Read"), ("File", data_id), ("Seek", "5"), ("Count", "3")]),
        "tail": net.send(pid, [("Action", "Read"), ("File", data_id), ("Seek", str(n - 4)), ("Count", "100")]),
        "past": net.send(pid, [("Action", "Read"), ("File", data_id), ("Seek", str(n + 10)), ("Count", "1")]),
        "rest": net.send(pid, [("Action", "Read"), ("File", data_id), ("Seek", str(n + 10))]),
    }
    wait = time.monotonic() + 10
    while time.monotonic() < wait and not all(s["id"] in schedule_heights(net, pid) for s in sends.values()):
        time.sleep(0.1)
    with net.cu() as cu:
        got = {k: reply(result(cu, pid, s)) for k, s in sends.items()}
    assert got["middle"]["Data"] == "one" and tag(got["middle"]["Tags"], "X-Pos") == "8"
    assert got["tail"]["Data"] == "two\n" and tag(got["tail"]["Tags"], "X-Pos") == str(n)
    assert got["past"]["Data"] == "<nil>" and tag(got["past"]["Tags"], "X-Size") == str(n)
    assert got["rest"]["Data"] == ""  # "a" at or past the end is the empty string, as in Lua


# ---------------------------------------------------------------- 2 GiB, streamed


GiB = 1024**3
BIG = 2 * GiB


def _big_chunk(n: int) -> bytes:
    """Data chunk ``n`` (1 MiB) of the big item, made on demand."""
    seed = hashlib.sha256(n.to_bytes(8, "little")).digest()
    return seed * (CHUNK_BYTES // len(seed))


def _write_big_item(db_path, signer: Ed25519Signer) -> str:
    """Store a real, signed 2 GiB data item straight into the gateway's SQLite store, one chunk at a time."""
    data_hash = hashlib.sha384()
    for n in range(BIG // CHUNK_BYTES):
        data_hash.update(_big_chunk(n))
    header_item = DataItem.create(b"", signer=signer, tags=[("Content-Type", "application/octet-stream")])
    acc = hashlib.sha384(_item_prefix(header_item.signature_type) + _key_blob(header_item.owner)).digest()
    acc = hashlib.sha384(acc + _key_blob(header_item.target)).digest()
    acc = hashlib.sha384(acc + _EMPTY_BLOB).digest()
    acc = hashlib.sha384(acc + _blob(header_item.tag_bytes)).digest()
    data_blob = hashlib.sha384(_blob_tag_digest(BIG) + data_hash.digest()).digest()
    signature = signer.sign(hashlib.sha384(acc + data_blob).digest())
    header = bytearray(header_item.to_bytes())
    header[2 : 2 + len(signature)] = signature  # signature type (2 bytes), then the signature
    item_id = b64url_encode(hashlib.sha256(signature).digest())
    record = ItemRecord(
        id=item_id,
        signature_type=header_item.signature_type,
        signature=signature,
        owner=header_item.owner,
        owner_address=header_item.owner_address,
        target="",
        anchor=b"",
        tags=header_item.tags,
        data_size=BIG,
    )

    def chunks():  # the upload's raw bytes (header + data) in CHUNK_BYTES pieces, generated lazily
        carry, index = bytes(header), 0
        for n in range(BIG // CHUNK_BYTES):
            buf = carry + _big_chunk(n)
            carry = buf[CHUNK_BYTES:]
            yield (item_id, index, buf[:CHUNK_BYTES])
            index += 1
        yield (item_id, index, carry)

    store = open_store(f"sqlite:///{db_path}")
    with store._write() as conn:
        store._insert_items(conn, [NewItem(record, len(header))], item_id)
        conn.executemany("INSERT INTO gw_chunks (blob, n, bytes) VALUES (?, ?, ?)", chunks())
    asyncio.run(store.close())
    return item_id


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass  # the process ended meanwhile
    return 0


def _rss() -> int:
    """Resident memory of this process and every process below it (the CU's VM workers)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(_rss_of(pid) for pid in tree)


@pytest.mark.slow
def test_streaming_a_2_gib_item_keeps_host_memory_bounded(net, module_id):
    big_id = _write_big_item(net.tmp / "gw.db", USER)
    head = httpx.head(f"{net.gateway}/raw/{big_id}", timeout=30)
    assert int(head.headers["content-length"]) == BIG
    net.upload(attestation(big_id))
    h = mine(net)
    pid = net.spawn(module_id, [("Attestor", ATTESTOR.address), ("Memory-Limit", "64-mb")])
    probe = wait_su_height(net, pid, h)
    sent = net.send(pid, [("Action", "Scan"), ("File", big_id), ("Piece", str(1024 * 1024))])
    expect = 0
    for n in range(BIG // CHUNK_BYTES):
        expect = (expect * 31 + _big_chunk(n)[-1]) % 1000000007

    peak, stop = [_rss()], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    with net.cu() as cu:
        result(cu, pid, probe)  # the process is loaded in its VM worker before the baseline
        baseline = peak[0] = _rss()
        sampler.start()
        started = time.monotonic()
        try:
            out = reply(result(cu, pid, sent))
        finally:
            stop.set()
            sampler.join()
    seconds = time.monotonic() - started
    assert out["Data"] == f"{BIG} {expect}"
    growth = peak[0] - baseline
    print(
        f"\n2 GiB streamed in {seconds:.1f} s ({BIG / seconds / 2**20:.0f} MiB/s); "
        f"RSS baseline {baseline / 2**20:.0f} MiB, peak growth {growth / 2**20:.0f} MiB"
    )
    assert growth < 256 * 2**20, f"host memory grew by {growth / 2**20:.0f} MiB while streaming 2 GiB"
