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
  (``on_generation``) and uploads one signed record per (process, message,
  output) on a background thread, *after* and *outside* the evaluation, so
  nothing in a process's result depends on it. Read-only (dry-run) generations
  and repeats (a replay after a rollback, or after a restart: the gateway is asked
  first) are not recorded twice.
  ``find_records(gateway_url, content)``: the records whose ``Data-Hash`` is the
  content's, newest first, via GraphQL.
* Side effects: HTTP to the gateway (recorder thread, lookups).
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from dataclasses import dataclass

import httpx

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
    """Uploads provenance records on its own thread (see the module docstring). ``close()`` drains it."""

    def __init__(self, gateway_url: str, signer: Signer, *, timeout: float = 30.0) -> None:
        self.signer = signer
        self.gateway_url = gateway_url
        self._client = httpx.Client(base_url=gateway_url, timeout=timeout)
        self._queue: queue.Queue[Generation | None] = queue.Queue()
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self.recorded: list[str] = []  # ids of the records uploaded, in order
        self._thread = threading.Thread(target=self._work, name="pyao-provenance", daemon=True)
        self._thread.start()

    def __call__(self, gen: Generation) -> None:
        """``llm@1.0``'s ``on_generation``: queue it (never blocks the evaluation)."""
        if gen.read_only or not gen.message:
            return
        key = (gen.process, gen.message, sha256_hex(gen.output))
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        self._queue.put(gen)

    def _work(self) -> None:
        while (gen := self._queue.get()) is not None:
            try:
                if self._already_recorded(gen):
                    continue
                item = DataItem.create(b"", signer=self.signer, tags=record_tags(gen))
                r = self._client.post(
                    "/tx/arweave", content=item.to_bytes(), headers={"content-type": "application/octet-stream"}
                )
                r.raise_for_status()
                self.recorded.append(item.id)
            except Exception:  # the evaluation is done; a lost record is logged loudly, the thread goes on
                log.exception("could not upload the provenance record of message %s", gen.message)
            finally:
                self._queue.task_done()

    def _already_recorded(self, gen: Generation) -> bool:
        """This unit recorded this message's output before (a replay after a restart)."""
        return any(
            r.message == gen.message and r.process == gen.process and r.recorder == self.signer.address
            for r in find_records(self.gateway_url, gen.output)
        )

    def flush(self) -> None:
        """Wait until every queued record is uploaded (or failed)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._client.close()


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
    variables = {
        "tags": [
            {"name": "Data-Protocol", "values": [PROTOCOL]},
            {"name": "Data-Hash", "values": [sha256_hex(content)]},
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


__all__ = ["PROTOCOL", "ProvenanceRecord", "ProvenanceRecorder", "find_records", "record_tags", "sha256_hex"]
