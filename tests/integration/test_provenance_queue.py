"""Provenance records survive a recorder that dies before uploading them: the durable queue (SQLite)
is drained by the next recorder, and every record arrives on the gateway exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from pyao._provenance_queue import LEASE_S, RecordQueue, record_key
from pyao.config import GatewayConfig
from pyao.data import DataItem, Ed25519Signer
from pyao.devices.llm import Generation
from pyao.gateway import create_app, open_store
from pyao.provenance import ProvenanceRecorder, find_records, record_tags
from pyao.testing.servers import serve_app

SEED = b"\x07" * 32
RECORDS = 12
UPLOAD_DELAY_S = 0.3

_CHILD = """
import sys, time
from pyao.data import Ed25519Signer
from pyao.devices.llm import Generation
from pyao.provenance import ProvenanceRecorder

url, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
recorder = ProvenanceRecorder(url, Ed25519Signer.from_seed(b"\\x07" * 32), queue_path=path)
for i in range(n):
    recorder(Generation("P" * 43, f"{i:043d}", "/data/" + "m" * 43, "ab" * 32, b"prompt", b"answer %d" % i, False))
print("queued", flush=True)
time.sleep(600)
"""


def slow_uploads(app, delay: float):
    """The gateway, taking ``delay`` seconds to answer each upload (so a kill lands mid-way)."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].startswith("/tx"):
            await asyncio.sleep(delay)
        await app(scope, receive, send)

    return wrapped


@pytest.fixture
def gateway(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'gw.db'}")
    with serve_app(slow_uploads(create_app(store, GatewayConfig(block_seconds=0)), UPLOAD_DELAY_S)) as url:
        yield url


def generation(i: int) -> Generation:
    return Generation("P" * 43, f"{i:043d}", "/data/" + "m" * 43, "ab" * 32, b"prompt", b"answer %d" % i, False)


def arrived(url: str) -> list[int]:
    """How many records each of the RECORDS answers has on the gateway."""
    return [len(find_records(url, generation(i).output)) for i in range(RECORDS)]


@pytest.mark.slow
def test_records_queued_by_a_killed_recorder_arrive_exactly_once(gateway, tmp_path):
    queue_file = tmp_path / "cu" / "provenance-queue.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, gateway, str(queue_file), str(RECORDS)],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "queued"  # every record is in the file now
        deadline = time.monotonic() + 60
        while sum(arrived(gateway)) < 2:
            assert time.monotonic() < deadline, "the recorder uploaded nothing"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)  # no drain, no goodbye
        child.wait(timeout=10)
    before = arrived(gateway)
    assert 0 < sum(before) < RECORDS, before  # killed mid-way: some records are still only in the queue
    assert max(before) == 1

    restarted = ProvenanceRecorder(gateway, Ed25519Signer.from_seed(SEED), queue_path=queue_file)
    try:
        assert restarted.flush(timeout=60)  # drained on start
        for i in range(RECORDS):  # the same generations replayed after the restart: not queued again
            restarted(generation(i))
        assert restarted.flush(timeout=10)
    finally:
        restarted.close()
    assert arrived(gateway) == [1] * RECORDS
    assert len(restarted.recorded) == RECORDS - sum(before)


_UPLOAD_THEN_DIE = """
import os, sys, httpx
from pyao._provenance_queue import RecordQueue, record_key
from pyao.data import DataItem, Ed25519Signer
from pyao.devices.llm import Generation
from pyao.provenance import record_tags

url, path = sys.argv[1], sys.argv[2]
gen = Generation("P" * 43, "0" * 43, "/data/" + "m" * 43, "ab" * 32, b"prompt", b"answer 0", False)
item = DataItem.create(b"", signer=Ed25519Signer.from_seed(b"\\x07" * 32), tags=record_tags(gen))
queue = RecordQueue(path)
queue.add(record_key(gen), item.to_bytes(), gen)
row = queue.claim()
httpx.post(url + "/tx/arweave", content=row.item, timeout=30).raise_for_status()
print(DataItem.from_bytes(row.item).id, flush=True)
os._exit(0)  # dies before done
"""


def test_a_crash_between_the_upload_and_done_does_not_record_twice(gateway, tmp_path):
    """A recorder uploaded a row and died before marking it done: the next one takes the row at once
    (its lease holder is gone), sees the record on the gateway and does not upload it again."""
    queue_file = tmp_path / "queue.db"
    child = subprocess.run([sys.executable, "-c", _UPLOAD_THEN_DIE, gateway, str(queue_file)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert child.returncode == 0, child.stderr
    uploaded = child.stdout.strip()
    recorder = ProvenanceRecorder(gateway, Ed25519Signer.from_seed(SEED), queue_path=queue_file)
    try:
        assert recorder.flush(timeout=LEASE_S / 2)  # not waiting for the dead holder's lease
    finally:
        recorder.close()
    assert recorder.recorded == []
    [record] = find_records(gateway, generation(0).output)
    assert record.id == uploaded


def test_rows_are_kept_once_and_leased(tmp_path):
    queue = RecordQueue(tmp_path / "queue.db")
    gen = generation(1)
    item = DataItem.create(b"", signer=Ed25519Signer.from_seed(SEED), tags=record_tags(gen)).to_bytes()
    assert queue.add(record_key(gen), item, gen)
    assert not queue.add(record_key(gen), item, gen)  # one row per (process, message, output)
    row = queue.claim()
    assert row is not None and row.item == item and row.message == gen.message
    assert queue.claim() is None  # leased to this live process: no second recorder takes it meanwhile
    again = queue.claim(now=time.time() + LEASE_S + 1)  # once the lease has run out it is taken again
    assert again is not None and again.seq == row.seq
    assert queue.pending() == 1
    queue.done(row.seq)
    assert queue.pending() == 0 and queue.claim(now=time.time() + 10 * LEASE_S) is None
    assert not queue.add(record_key(gen), item, gen)  # done rows are kept: a replay is not queued again
    queue.close()
