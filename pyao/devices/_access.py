"""WeaveDrive's access rules for ``/data/<id>``: who may read which item, at which block height.

Contract
--------
* Assumes: the process's tags, its module's tags, the message's
  ``Block-Height``, and a GraphQL callable on the gateway
  (``query, variables -> data``).
* Produces: ``check_admissible`` returns None when the process may read the
  item while handling that message, and raises ``DeviceAccessDenied`` with the
  reason otherwise (``DeviceError`` for a mode this implementation refuses).
* Side effects: GraphQL queries. ``Admissions`` remembers answers: an item
  admitted at height h stays admitted at every height above h (attestations
  are never removed), and one refused at h stays refused at heights up to h
  (a new attestation lands in a later block), so neither memo changes an answer.

The rules, in the order of ``checkAdmissible`` in permaweb/aos
``extensions/weavedrive`` (spec ai-on-ao.md §1):

1. the process's ``On-Boot`` tag names the item → admitted;
2. neither the module nor the process has ``Extension: WeaveDrive`` → refused;
3. the mode is ``Availability-Type`` of the process, else of the module, else
   ``Assignments``; ``Individual`` also accepted, ``Library`` is refused as
   unsupported, anything else is an error;
4. attestors are the process's ``Scheduler`` plus every ``Attestor`` tag; an item
   of theirs tagged ``Data-Protocol: ao, Type: Attestation, Message: <id>`` in a
   block at or below the message's ``Block-Height`` admits it;
5. in ``Individual`` mode, so does one tagged ``Data-Protocol: WeaveDrive,
   Type: Available, ID: <id>``;
6. otherwise refused. Pending (unmined) items never count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pyao.errors import DeviceAccessDenied, DeviceError

Tags = tuple[tuple[str, str], ...]
GraphQL = Callable[[str, dict[str, Any]], dict[str, Any]]

MODES = ("Assignments", "Individual", "Library")
NOT_ENABLED = "WeaveDrive is not enabled: no 'Extension: WeaveDrive' tag on the process or its module"

_QUERY = """query($owners: [String!], $max: Int, $tags: [TagFilter!]) {
  transactions(owners: $owners, block: {min: 0, max: $max}, tags: $tags, first: 1) { edges { node { id } } }
}"""


def tag_value(tags: Tags, name: str) -> str | None:
    return next((v for n, v in tags if n == name), None)


def tag_values(tags: Tags, name: str) -> list[str]:
    return [v for n, v in tags if n == name]


def has_extension(process_tags: Tags, module_tags: Tags) -> bool:
    """``Extension: WeaveDrive`` on the module or the process."""
    return "WeaveDrive" in tag_values(module_tags, "Extension") + tag_values(process_tags, "Extension")


def mode_of(process_tags: Tags, module_tags: Tags) -> str:
    """The process's Availability-Type, else the module's, else Assignments; DeviceError if unknown."""
    mode = tag_value(process_tags, "Availability-Type") or tag_value(module_tags, "Availability-Type") or "Assignments"
    if mode not in MODES:
        raise DeviceError(f"Unsupported WeaveDrive mode: {mode}")
    return mode


def attestors_of(process_tags: Tags) -> tuple[str, ...]:
    """The process's Scheduler, then each Attestor tag (empty values dropped)."""
    found = [tag_value(process_tags, "Scheduler") or "", *tag_values(process_tags, "Attestor")]
    return tuple(dict.fromkeys(a for a in found if a))


def message_height(msg: dict) -> int:
    """The message's Block-Height; DeviceAccessDenied if it has none (the module's boot)."""
    raw = msg.get("Block-Height")
    try:
        height = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DeviceAccessDenied("the message has no Block-Height, so no attestation can count") from None
    if height < 0:
        raise DeviceAccessDenied(f"negative Block-Height {height}")
    return height


class Admissions:
    """Answers of ``check_admissible`` (see the module docstring), memoised where they cannot change."""

    def __init__(self, graphql: GraphQL) -> None:
        self.graphql = graphql
        self._lock = threading.Lock()
        #: (item, attestors, mode) -> lowest height known to admit / highest known to refuse
        self._admitted: dict[tuple, int] = {}
        self._refused: dict[tuple, int] = {}
        self.queries = 0

    def check(self, item_id: str, process_tags: Tags, module_tags: Tags, msg: dict) -> None:
        """None if the process may read ``item_id`` while handling ``msg``; raises DeviceAccessDenied."""
        if tag_value(process_tags, "On-Boot") == item_id:
            return
        if not has_extension(process_tags, module_tags):
            raise DeviceAccessDenied(NOT_ENABLED)
        mode = mode_of(process_tags, module_tags)
        if mode == "Library":
            raise DeviceError("Availability-Type Library is not supported by this WeaveDrive implementation")
        height = message_height(msg)
        attestors = attestors_of(process_tags)
        key = (item_id, attestors, mode)
        with self._lock:
            if self._admitted.get(key, height + 1) <= height:
                return
            if self._refused.get(key, -1) >= height:
                raise _refusal(item_id, height, mode)
        admitted = bool(attestors) and self._attested(item_id, attestors, mode, height)
        with self._lock:
            if admitted:
                self._admitted[key] = min(height, self._admitted.get(key, height))
            else:
                self._refused[key] = max(height, self._refused.get(key, height))
        if not admitted:
            raise _refusal(item_id, height, mode)

    def _attested(self, item_id: str, attestors: tuple[str, ...], mode: str, height: int) -> bool:
        filters = [
            [("Type", "Attestation"), ("Message", item_id), ("Data-Protocol", "ao")],
        ]
        if mode == "Individual":
            filters.append([("Type", "Available"), ("ID", item_id), ("Data-Protocol", "WeaveDrive")])
        for tags in filters:
            variables = {
                "owners": list(attestors),
                "max": height,
                "tags": [{"name": n, "values": [v]} for n, v in tags],
            }
            self.queries += 1
            if self.graphql(_QUERY, variables)["transactions"]["edges"]:
                return True
        return False


def _refusal(item_id: str, height: int, mode: str) -> DeviceAccessDenied:
    return DeviceAccessDenied(
        f"WeaveDrive: {item_id} is not admissible: no attestation ({mode}) by the process's "
        f"Scheduler or Attestors at or below Block-Height {height}"
    )
