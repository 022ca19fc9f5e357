"""Provenance records for model output (ANS-112 "Digital Content Provenance Records", RAIL).

Contract
--------
* Assumes: a gateway (``POST /tx/arweave``, ``POST /graphql``) and a signer (the CU's wallet).
* Produces: ``record_tags(generation)``: the ANS-112 tags of one generation
  (``Data-Protocol: Provenance-Confirmation``, ``Hashing-Algo: sha256``,
  ``Data-Hash``, ``Prompt-Hash``, ``Model``) plus pyao's own (``Model-Hash``,
  ``Process``, ``Message``, ``Device``). Hashes are lowercase hex sha256 of the
  exact bytes. The record stores no content: a private prompt stays private
  and can be revealed later against ``Prompt-Hash``.
  ``ProvenanceRecorder``: takes ``Generation``s from ``llm@1.0``
  (``on_generation``), signs one record per (process, message, output) and
  puts it in a durable queue (``_provenance_queue``: a SQLite file under the
  CU's data directory) at once; a background thread uploads it *after* and
  *outside* the evaluation, so nothing in a process's result depends on it.
  The queue is drained on start, so a CU that stops (or is killed) before an
  upload uploads it when it starts again; a failed upload is retried. Each
  record arrives once: the queue keeps one row per (process, message, output),
  the row holds the signed item's bytes (an upload repeated after a crash
  between the upload and its ``done`` is the same item id, which the gateway
  keeps once), and the gateway is asked first. Read-only (dry-run)
  generations are not recorded.
  ``find_records(gateway_url, content)``: the records whose ``Data-Hash`` is the
  content's, newest first, via GraphQL.
* Side effects: HTTP to the gateway (recorder thread, lookups); the queue file.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pyao._provenance_queue import POLL_S, QueuedRecord, RecordQueue, record_key
from pyao.abc import Signer
from pyao.data import DataItem
from pyao.devices.llm import Generation

log = logging.getLogger("pyao.provenance")

PROTOCOL = "Provenance-Confirmation"
_QUERY = """
query($tags: [TagFilter!], $first: Int) {
  transactions(tags: $tags, first: $first) {
    edges { node { id owner { address } tags { name value } block { height } } }
  }
}
"""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_id(drive_path: str) -> str:
    """``/data/<id>`` -> ``<id>`` (the model's item id); other paths unchanged."""
    return drive_path.removeprefix("/data/")


def record_tags(gen: Generation) -> list[tuple[str, str]]:
    return [
        ("Data-Protocol", PROTOCOL),
        ("Hashing-Algo", "sha256"),
        ("Data-Hash", sha256_hex(gen.output)),
        ("Prompt-Hash", sha256_hex(gen.prompt)),
        ("Model", model_id(gen.model)),
        ("Model-Hash", gen.model_sha256),
        ("Process", gen.process),
        ("Message", gen.message),
        ("Device", "llm@1.0"),
    ]


class ProvenanceRecorder:
    """Uploads provenance records on its own thread (see the module docstring). ``close()`` stops it.

    ``queue_path``: the SQLite file of the durable queue (None: in memory, lost with the recorder).
    Several recorders (the CU's VM worker processes) may share one file."""

    def __init__(
        self, gateway_url: str, signer: Signer, *, timeout: float = 30.0, queue_path: str | Path | None = None
    ) -> None:
        self.signer = signer
        self.gateway_url = gateway_url
        self._client = httpx.Client(base_url=gateway_url, timeout=timeout)
        self._queue = RecordQueue(queue_path)
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self.recorded: list[str] = []  # ids of the records uploaded by this recorder, in order
        self._thread = threading.Thread(target=self._work, name="pyao-provenance", daemon=True)
        self._wake.set()  # drain what an earlier run left in the queue
        self._thread.start()

    def __call__(self, gen: Generation) -> None:
        """``llm@1.0``'s ``on_generation``: sign the record and queue it durably (the upload is later)."""
        if gen.read_only or not gen.message:
            return
        key = record_key(gen)
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        item = DataItem.create(b"", signer=self.signer, tags=record_tags(gen))
        if self._queue.add(key, item.to_bytes(), gen):
            self._wake.set()

    def _work(self) -> None:
        while not self._stop:
            self._wake.wait(POLL_S)
            self._wake.clear()
            while not self._stop and (row := self._queue.claim()) is not None:
                self._upload(row)

    def _upload(self, row: QueuedRecord) -> None:
        try:
            if not self._already_recorded(row):
                r = self._client.post(
                    "/tx/arweave", content=row.item, headers={"content-type": "application/octet-stream"}
                )
                r.raise_for_status()
                self.recorded.append(DataItem.from_bytes(row.item).id)
            self._queue.done(row.seq)
        except Exception:  # the evaluation is done; the row stays queued and is tried again after its lease
            log.exception("could not upload the provenance record of message %s (will retry)", row.message)

    def _already_recorded(self, row: QueuedRecord) -> bool:
        """This unit recorded this message's output before (a replay after a restart, or a crash
        between the upload and ``done``)."""
        return any(
            r.message == row.message and r.process == row.process and r.recorder == self.signer.address
            for r in find_records_by_hash(self.gateway_url, row.data_hash)
        )

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until the queue holds nothing to upload (True), or ``timeout`` seconds (False)."""
        deadline = time.monotonic() + timeout
        while self._queue.pending() and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.02)
        return not self._queue.pending()

    def close(self, drain_s: float = 5.0) -> None:
        """Upload what is queued for up to ``drain_s`` seconds, then stop the thread (after the upload
        in progress); what is still queued stays in the file for the next start."""
        if drain_s > 0 and self._thread.is_alive():
            self.flush(drain_s)
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._client.close()
        self._queue.close()


@dataclass(frozen=True)
class ProvenanceRecord:
    """One record found on the gateway."""

    id: str
    recorder: str  # the address that signed it (a CU)
    model: str
    process: str
    message: str
    prompt_hash: str
    block_height: int | None


def find_records(gateway_url: str, content: bytes, *, limit: int = 20) -> list[ProvenanceRecord]:
    """Records on the gateway saying a model produced exactly ``content``."""
    return find_records_by_hash(gateway_url, sha256_hex(content), limit=limit)


def find_records_by_hash(gateway_url: str, data_hash: str, *, limit: int = 20) -> list[ProvenanceRecord]:
    """Records on the gateway whose ``Data-Hash`` is ``data_hash`` (lowercase hex sha256)."""
    variables = {
        "tags": [
            {"name": "Data-Protocol", "values": [PROTOCOL]},
            {"name": "Data-Hash", "values": [data_hash]},
        ],
        "first": limit,
    }
    r = httpx.post(f"{gateway_url}/graphql", json={"query": _QUERY, "variables": variables}, timeout=30)
    r.raise_for_status()
    records = []
    for edge in r.json()["data"]["transactions"]["edges"]:
        node = edge["node"]
        tags = {t["name"]: t["value"] for t in node["tags"]}
        records.append(
            ProvenanceRecord(
                id=node["id"],
                recorder=node["owner"]["address"],
                model=tags.get("Model", ""),
                process=tags.get("Process", ""),
                message=tags.get("Message", ""),
                prompt_hash=tags.get("Prompt-Hash", ""),
                block_height=(node.get("block") or {}).get("height"),
            )
        )
    return records


__all__ = [
    "PROTOCOL",
    "ProvenanceRecord",
    "ProvenanceRecorder",
    "find_records",
    "find_records_by_hash",
    "record_tags",
    "sha256_hex",
]
