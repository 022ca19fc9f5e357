"""Planning what a process evaluates next, from one page of its schedule. Pure.

Contract
--------
* Assumes: the process's constants (``ProcessPlan``: id, owner, crons, origin),
  the position it has been evaluated to (``Position``; its ``last`` is not
  read), one page of SU schedule nodes in nonce order (nonces already evaluated
  are skipped), the gateway's metadata (and data) of the items the page assigns
  (``hydrated``, keyed by item id), and the blocks the page's cron ticks need.
* Produces: ``plan_page`` -> the messages and cron ticks to evaluate, in order
  (``Pending``: the msg as the VM receives it and where its result goes), the
  position after them, and the ``ScheduleError`` at the first break in the
  nonces or the hash chain (spec §7: nothing past a break is planned).
  ``plan_ticks`` plans the cron ticks after the last scheduled message.
* Where it runs: in the VM worker that holds the process. Reading entries into
  msgs, the hash chain and the cron ticks are per-message work, and the CU's
  coordinating process, which every worker shares, must not spend it: its share
  bounds the speed-up that more workers give.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from pyao.cu._checkpoints import Position
from pyao.cu._cron import Block, Cron, CronTick, cron_ticks_between
from pyao.cu._messages import ScheduledMessage, evaluation_tags, first_tag, from_schedule_entry, hydrate
from pyao.data import b64url_decode, b64url_encode
from pyao.errors import ParseError, ScheduleError, UnitError

log = logging.getLogger("pyao.cu")


def seed_hash_chain(process_id: str) -> str:
    """Hash-Chain of nonce 0: sha256 of the process id's bytes."""
    return b64url_encode(hashlib.sha256(b64url_decode(process_id)).digest())


def next_hash_chain(previous_assignment_id: str, previous_chain: str) -> str:
    """Hash-Chain_n = sha256(prev assignment id bytes ‖ Hash-Chain_{n-1} bytes)."""
    digest = hashlib.sha256(b64url_decode(previous_assignment_id) + b64url_decode(previous_chain))
    return b64url_encode(digest.digest())


def initial_position(process_id: str) -> Position:
    """The position of a process nothing of which has been evaluated (nonce 0 comes next)."""
    return Position(0, 0, None, seed_hash_chain(process_id), None, None, 0, 0, None)


@dataclass(frozen=True)
class ProcessPlan:
    """What planning needs of a process that never changes."""

    process_id: str
    owner: str
    crons: tuple[Cron, ...]
    #: the process message's block: cron intervals count from it
    origin: Block


@dataclass(frozen=True)
class Pending:
    """One message about to be evaluated, and where its result goes."""

    msg: dict[str, Any]
    message_id: str | None
    ordinate: int
    cron: str | None
    timestamp: int
    block_height: int


# ------------------------------------------------------------------ what the coordinator reads of a page


def assignment_tag(node: dict[str, Any], name: str) -> str | None:
    """The first value of the tag ``name`` on a schedule node's assignment."""
    return first_tag((node.get("assignment") or {}).get("tags") or [], name)


def assigned_items(nodes: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    """(item id, whether its Data is wanted) of each entry that assigns an existing item."""
    wanted = []
    for node in nodes:
        if node.get("message") is None:
            item = assignment_tag(node, "Message")
            excluded = {t.get("value") for t in node["assignment"].get("tags") or () if t.get("name") == "Exclude"}
            wanted.append((item, "Data" not in excluded))
    return wanted


def cron_window(nodes: list[dict[str, Any]], pos: Position) -> tuple[int, int] | None:
    """(from block height, to timestamp) of the blocks the page's cron ticks may need."""
    try:
        until = int(assignment_tag(nodes[-1], "Timestamp"))  # type: ignore[arg-type]
        if pos.left_height is not None:
            return pos.left_height, until
        if len(nodes) > 1:
            return int(assignment_tag(nodes[0], "Block-Height")), until  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnitError("schedule entry's assignment has no integer Timestamp or Block-Height tag") from None
    return None


# ------------------------------------------------------------------ planning (in the worker)


def plan_page(
    plan: ProcessPlan,
    pos: Position,
    nodes: list[dict[str, Any]],
    hydrated: dict[str, tuple[dict[str, Any], str | None]],
    blocks: list[Block],
) -> tuple[list[Pending], Position, ScheduleError | None]:
    """The work one schedule page gives (see the module docstring)."""
    scheduled = [m for m in map(_map_entry, nodes) if m.ordinate >= pos.next_nonce]
    if not scheduled:
        return [], pos, None
    valid, broken, chain = _verified(plan.process_id, pos, scheduled)
    if not valid:
        return [], pos, broken
    valid = [_hydrated(sm, hydrated) for sm in valid]
    work, pos = _with_crons(plan, pos, valid, blocks, chain)
    return work, replace(pos, cursor=valid[-1].timestamp_ms), broken


def plan_ticks(plan: ProcessPlan, pos: Position, until: int, blocks: list[Block]) -> tuple[list[Pending], Position]:
    """Cron ticks after the last scheduled message up to ``until`` (ms)."""
    if pos.left_height is None or pos.left_timestamp is None:
        return [], pos
    left = Block(pos.left_height, pos.left_timestamp)
    return _ticks(plan, left, pos.left_ordinate, until, pos.cron_until, blocks), replace(pos, cron_until=until)


def _map_entry(node: dict[str, Any]) -> ScheduledMessage:
    try:
        return from_schedule_entry(node)
    except (KeyError, TypeError, AttributeError) as exc:
        raise UnitError(f"the SU answered a schedule entry the CU cannot read: {exc!r}") from None


def _verified(
    pid: str, pos: Position, scheduled: list[ScheduledMessage]
) -> tuple[list, ScheduleError | None, str | None]:
    """The prefix of ``scheduled`` whose nonces and hash chain follow on, the error at the first
    break, and the Hash-Chain expected after the prefix (None: not known)."""
    expected_nonce, chain = pos.next_nonce, pos.expected_chain
    for i, sm in enumerate(scheduled):
        if sm.ordinate != expected_nonce:
            return scheduled[:i], ScheduleError(
                f"process {pid}: the SU skipped from nonce {expected_nonce - 1} to {sm.ordinate}"
            ), chain  # fmt: skip
        if sm.msg.get("Hash-Chain") != chain:
            return scheduled[:i], ScheduleError(
                f"process {pid}: the SU's hash chain breaks at nonce {sm.ordinate} "
                f"(Hash-Chain {sm.msg.get('Hash-Chain')!r}, expected {chain!r}); not evaluating past it"
            ), chain  # fmt: skip
        try:
            chain = next_hash_chain(sm.assignment_id, chain)
        except ParseError:
            return scheduled[: i + 1], ScheduleError(f"process {pid}: bad assignment id at {sm.ordinate}"), None
        expected_nonce += 1
    return scheduled, None, chain


def _hydrated(sm: ScheduledMessage, hydrated: dict[str, tuple[dict[str, Any], str | None]]) -> ScheduledMessage:
    if not sm.is_assignment:
        return sm
    found = hydrated.get(sm.msg["Message"])
    if found is None:
        raise UnitError(f"assigned item {sm.msg['Message']} was not found on the gateway")
    meta, data = found
    return hydrate(sm, meta, None if "Data" in sm.exclude else data)


def _with_crons(
    plan: ProcessPlan, pos: Position, scheduled: list[ScheduledMessage], blocks: list[Block], chain: str | None
) -> tuple[list[Pending], Position]:
    """The page's messages with the cron ticks due between consecutive ones, and the position after
    (``chain``: the Hash-Chain expected after them, when ``_verified`` computed it)."""
    work: list[Pending] = []
    left_height, left_timestamp, left_ordinate, cron_until = (
        pos.left_height, pos.left_timestamp, pos.left_ordinate, pos.cron_until
    )  # fmt: skip
    for sm in scheduled:
        if plan.crons and left_height is not None and left_timestamp is not None:
            if sm.timestamp_ms < cron_until:
                log.warning("process %s: message %s is older than cron ticks already evaluated",
                            plan.process_id, sm.ordinate)  # fmt: skip
            left = Block(left_height, left_timestamp)
            work += _ticks(plan, left, left_ordinate, sm.timestamp_ms, cron_until, blocks)
            cron_until = max(cron_until, sm.timestamp_ms)
        work.append(Pending(evaluation_tags(sm.msg), sm.msg["Id"], sm.ordinate, None, sm.timestamp_ms,
                            sm.block_height))  # fmt: skip
        left_height, left_timestamp, left_ordinate = sm.block_height, sm.timestamp_ms, sm.ordinate
    last = scheduled[-1]
    after = replace(
        pos,
        next_nonce=last.ordinate + 1,
        expected_chain=chain if chain is not None else next_hash_chain(last.assignment_id, last.msg["Hash-Chain"]),
        left_height=left_height,
        left_timestamp=left_timestamp,
        left_ordinate=left_ordinate,
        cron_until=cron_until,
    )
    return work, after


def _ticks(
    plan: ProcessPlan, left: Block, ordinate: int, right: int, cron_until: int, blocks: list[Block]
) -> list[Pending]:
    """Ticks from ``left`` (the message at ``ordinate``) to ``right``, none before ``cron_until``."""
    ticks: Iterable[CronTick] = cron_ticks_between(plan.crons, plan.origin, left, ordinate, right, blocks)
    return [_cron_message(plan, t) for t in ticks if t.timestamp_ms >= cron_until]


def _cron_message(plan: ProcessPlan, tick: CronTick) -> Pending:
    """Spec §6: Owner/From = the process owner, Target = pid, the cron's tags; no Id, Nonce or Signature."""
    msg = {
        "Owner": plan.owner,
        "From": plan.owner,
        "Target": plan.process_id,
        "Tags": [{"name": t.name, "value": t.value} for t in tick.cron.tags],
        "Timestamp": tick.timestamp_ms,
        "Block-Height": tick.block_height,
        "Cron": True,
    }
    return Pending(msg, None, tick.ordinate, tick.cron.name, tick.timestamp_ms, tick.block_height)


__all__ = [
    "Pending",
    "ProcessPlan",
    "assigned_items",
    "assignment_tag",
    "cron_window",
    "initial_position",
    "next_hash_chain",
    "plan_page",
    "plan_ticks",
    "seed_hash_chain",
]
