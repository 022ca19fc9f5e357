"""The MU's pure logic: what a crank does with a result, and the items it signs.

Contract (as the official MU: ``lib/pull-result.js``, ``lib/build-tx.js``,
``lib/spawn-process.js``, ``lib/build-success-tx.js``, ``api/processAssign.js``):

* ``crank_jobs``: a CU result becomes one job per outbox entry: a ``message``
  job per Message that has ``Target``, ``Anchor`` and ``Tags`` (others are
  dropped, as the official MU does), a ``spawn`` job per Spawn, and an
  ``assign`` job per (process, message) of each Assignment.
* ``build_message``: a pushed Message signed by the MU: target = ``Target``,
  anchor = ``Anchor``, data = ``Data`` or ``" "``, tags = the outbox tags minus
  every ``Data-Protocol``, ``Type``, ``From-Process``, ``From-Module`` and
  ``Assignments`` tag, then ``Data-Protocol=ao``, ``Type=Message``,
  ``From-Process``, ``From-Module`` and (when there is a root) ``Pushed-For``.
* ``build_process``: a spawned Process signed by the MU: no target, no anchor,
  data = ``Data`` or ``" "``, tags = the spawn tags minus ``Data-Protocol`` and
  ``Type``, then ``Variant`` (``ao.N.1`` kept, else ``ao.TN.1``),
  ``Data-Protocol=ao``, ``Type=Process``, ``From-Process``, ``Pushed-For`` (with a
  root), and ``Scheduler=<spawner's SU>`` when the spawn names none; every
  ``From-Module`` value becomes the spawner's module.
* ``build_spawned``: the notice to the spawner: the spawn tags minus
  ``Data-Protocol=ao``, ``Variant`` and ``Type``, then ``Data-Protocol=ao``,
  ``Type=Message``, ``Process=<new pid>``, ``Action=Spawned``, ``Variant``; target =
  spawner, data ``" "``, no anchor.

Side effects: none (signing is a pure function of the signer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pyao.abc import Signer
from pyao.data import DataItem, Tag, is_id
from pyao.errors import AoTagError, Conflict, DataError, PyaoError, RequestError

# job kinds
RESULT = "result"  # {process, message, root}: crank the result of message on process
MESSAGE = "message"  # {from, msg, root}: sign an outbox Message -> deliver
SPAWN = "spawn"  # {from, spawn, root}: sign an outbox Spawn -> process
DELIVER = "deliver"  # {item, root, assignments}: send a signed Message to its target's SU (or the gateway)
PROCESS = "process"  # {item, root, from, spawn_tags}: send a signed Process to its SU, then tell the spawner
ASSIGN = "assign"  # {process, message, root, base_layer, exclude}: assign, then crank the result
KINDS = (RESULT, MESSAGE, SPAWN, DELIVER, PROCESS, ASSIGN)

PUSH_DROPPED = ("Data-Protocol", "Type", "From-Process", "From-Module", "Assignments")
N1, TN1 = "ao.N.1", "ao.TN.1"


@dataclass(frozen=True)
class Job:
    """One durable unit of crank work. ``payload`` is JSON; ``next_at`` is epoch seconds."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int = 0
    next_at: float = 0.0
    state: str = "pending"  # pending | failed
    error: str | None = None
    #: not stored: the id of the job that made this one (for debugging only)
    parent: str | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "payload": _summary(self.payload),
            "attempts": self.attempts,
            "next_at": self.next_at,
            "state": self.state,
            "error": self.error,
        }


def _summary(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: (f"<{len(v)} chars>" if k == "item" and isinstance(v, str) else v) for k, v in payload.items()}


def job_id(*parts: Any) -> str:
    """A deterministic job id: the same work recorded twice is one job."""
    text = json.dumps(parts, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def new_job(kind: str, payload: dict[str, Any], *key: Any, now: float = 0.0) -> Job:
    return Job(job_id(kind, *key), kind, payload, next_at=now)


def result_job(process: str, message: str, root: str | None, now: float = 0.0) -> Job:
    return new_job(RESULT, {"process": process, "message": message, "root": root}, process, message, now=now)


def assign_job(
    process: str,
    message: str,
    root: str | None,
    *,
    base_layer: bool = False,
    exclude: list[str] | None = None,
    now: float = 0.0,
) -> Job:
    payload = {"process": process, "message": message, "root": root, "base_layer": base_layer, "exclude": exclude}
    return new_job(ASSIGN, payload, process, message, now=now)


def backoff(attempts: int, base: float, cap: float) -> float:
    """Delay before the next try after ``attempts`` failed ones: base·2^(attempts-1), capped."""
    return min(cap, base * (2 ** max(0, min(attempts - 1, 30))))


def is_duplicate(exc: PyaoError) -> bool:
    """An SU answer meaning 'this is already scheduled': the work is done (at-least-once delivery)."""
    if not isinstance(exc, (RequestError, Conflict)):
        return False
    text = str(exc)
    return "already exists" in text or "already scheduled" in text


# ---------------------------------------------------------------- results -> jobs


def _tags_ok(tags: Any) -> bool:
    return isinstance(tags, list) and all(
        isinstance(t, dict) and isinstance(t.get("name"), str) and isinstance(t.get("value"), str) for t in tags
    )


def pushable(msg: Any) -> bool:
    """The official rule: a Message is pushed only with Target, Anchor and Tags defined (and well-formed)."""
    return (
        isinstance(msg, dict)
        and isinstance(msg.get("Target"), str)
        and isinstance(msg.get("Anchor"), str)
        and _tags_ok(msg.get("Tags"))
    )


def crank_jobs(parent: str, process: str, result: dict[str, Any], root: str | None, now: float = 0.0) -> list[Job]:
    """The jobs that push a result's outbox, with ids derived from ``parent`` (idempotent)."""
    jobs: list[Job] = []
    for i, msg in enumerate(_list(result.get("Messages"))):
        if pushable(msg):
            payload = {"from": process, "msg": msg, "root": root}
            jobs.append(new_job(MESSAGE, payload, parent, "m", i, now=now))
    for i, spawn in enumerate(_list(result.get("Spawns"))):
        if isinstance(spawn, dict) and _tags_ok(spawn.get("Tags", [])):
            jobs.append(new_job(SPAWN, {"from": process, "spawn": spawn, "root": root}, parent, "s", i, now=now))
    for assignment in _list(result.get("Assignments")):
        if not isinstance(assignment, dict) or not isinstance(assignment.get("Message"), str):
            continue
        for pid in _list(assignment.get("Processes")):
            if isinstance(pid, str):
                jobs.append(assign_job(pid, assignment["Message"], root, now=now))
    return jobs


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- items


def _tags(raw: list[dict[str, str]]) -> list[Tag]:
    return [Tag(t["name"], t["value"]) for t in raw]


def _data(value: Any) -> str | bytes:
    if value is None or value == "":
        return " "  # the official buildAndSign: data || ' '
    if isinstance(value, (str, bytes)):
        return value
    return json.dumps(value, separators=(",", ":"))


def _anchor(value: str | None) -> bytes:
    if not value:
        return b""
    raw = value.encode("utf-8")
    if len(raw) != 32:
        raise DataError(f"an anchor must be 32 bytes, not {len(raw)}: {value[:40]!r}")
    return raw


def pushed_tags(tags: list[dict[str, str]], from_process: str, from_module: str, root: str | None) -> list[Tag]:
    kept = [t for t in _tags(tags) if t.name not in PUSH_DROPPED]
    kept += [Tag("Data-Protocol", "ao"), Tag("Type", "Message")]
    kept += [Tag("From-Process", from_process), Tag("From-Module", from_module)]
    if root:
        kept.append(Tag("Pushed-For", root))
    return kept


def assignments_of(tags: list[dict[str, str]]) -> list[str]:
    """The processes an ``Assignments`` tag names: a JSON array or a comma-separated list of ids."""
    value = next((t["value"] for t in tags if t["name"] == "Assignments"), None)
    if not value:
        return []
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value.split(",")
    items = parsed if isinstance(parsed, list) else [parsed]
    return [p.strip() for p in items if isinstance(p, str) and is_id(p.strip())]


def build_message(
    signer: Signer, msg: dict[str, Any], from_process: str, from_module: str, root: str | None
) -> DataItem:
    if not is_id(msg["Target"]):
        raise DataError(f"outbox Target {msg['Target'][:60]!r} is not an id")
    return DataItem.create(
        _data(msg.get("Data")),
        signer=signer,
        tags=pushed_tags(msg["Tags"], from_process, from_module, root),
        target=msg["Target"],
        anchor=_anchor(msg.get("Anchor")),
    )


def _variant(tags: list[Tag]) -> str:
    return N1 if next((t.value for t in tags if t.name == "Variant"), None) == N1 else TN1


def process_tags(
    spawn_tags: list[dict[str, str]], spawner: str, spawner_module: str, spawner_scheduler: str, root: str | None
) -> list[Tag]:
    original = _tags(spawn_tags)
    tags = [t for t in original if t.name not in ("Data-Protocol", "Type")]
    tags += [Tag("Variant", _variant(original)), Tag("Data-Protocol", "ao"), Tag("Type", "Process")]
    tags.append(Tag("From-Process", spawner))
    if root:
        tags.append(Tag("Pushed-For", root))
    if not any(t.name == "Scheduler" for t in tags):
        tags.append(Tag("Scheduler", spawner_scheduler))
    if not any(t.name == "Module" for t in tags):
        raise AoTagError("No Module tag found on 'Process' DataItem")
    return [Tag(t.name, spawner_module) if t.name == "From-Module" else t for t in tags]


def build_process(
    signer: Signer,
    spawn: dict[str, Any],
    spawner: str,
    spawner_module: str,
    spawner_scheduler: str,
    root: str | None,
) -> DataItem:
    tags = process_tags(spawn.get("Tags") or [], spawner, spawner_module, spawner_scheduler, root)
    return DataItem.create(_data(spawn.get("Data")), signer=signer, tags=tags)


def spawned_tags(spawn_tags: list[dict[str, str]], new_process: str) -> list[Tag]:
    original = _tags(spawn_tags)
    tags = [
        t for t in original if not (t.name == "Data-Protocol" and t.value == "ao") and t.name not in ("Variant", "Type")
    ]
    tags += [Tag("Data-Protocol", "ao"), Tag("Type", "Message"), Tag("Process", new_process)]
    tags += [Tag("Action", "Spawned"), Tag("Variant", _variant(original))]
    return tags


def build_spawned(signer: Signer, spawn_tags: list[dict[str, str]], spawner: str, new_process: str) -> DataItem:
    return DataItem.create(" ", signer=signer, tags=spawned_tags(spawn_tags, new_process), target=spawner)


# ---------------------------------------------------------------- incoming items


def item_kind(item: DataItem) -> str:
    """``"Process"`` or ``"Message"`` as the official MU decides: Data-Protocol must include ao, Type must
    include Process or Message; with both, the earliest wins."""
    if "ao" not in item.tag_values("Data-Protocol"):
        raise AoTagError("Tag 'Data-Protocol': must contain 'ao'")
    for t in item.tags:
        if t.name == "Type" and t.value in ("Process", "Message"):
            return t.value
    raise AoTagError("Tag 'Type': must be either 'Process' or 'Message'")
