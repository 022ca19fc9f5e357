"""Turning SU schedule entries into the ``msg`` a process evaluates (spec §2.4).

Contract (as the official CU, servers/cu ``ao-su.js mapNode``, ``hydrateMessages.js``
and ``evaluate.js removeInvalidTags``):

* From the assignment: ``Target`` = its ``Process`` tag, ``Epoch``/``Nonce``/``Timestamp``/
  ``Block-Height`` as integers, ``Hash-Chain``; ``Exclude`` tags name fields to drop.
* From the message: ``Id, Signature, Data, Anchor, Tags``; ``Owner`` = the owner's address
  (EIP-55 for 65-byte Ethereum keys); ``From`` = the ``From-Process`` tag if set, else Owner;
  ``Forwarded-By`` = Owner when a ``From-Process`` tag exists.
* An assignment of an existing item (``message`` null) carries only the assignment's
  fields; the CU hydrates the message from the gateway (``hydrate``).
* ``Cron`` is false and ``Read-Only`` false for scheduled messages; tags literally named
  ``From`` or ``Owner`` are removed before evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyao.data import b64url_decode
from pyao.data.signing import ethereum_address
from pyao.errors import UnitError

_ETHEREUM_KEY_LENGTH = 65


@dataclass(frozen=True)
class ScheduledMessage:
    """One schedule entry, ready to evaluate (after hydration when ``is_assignment``)."""

    ordinate: int
    assignment_id: str
    is_assignment: bool
    exclude: tuple[str, ...]
    block_height: int
    timestamp_ms: int
    msg: dict[str, Any] = field(hash=False, compare=True)


#: base64url lengths a 65-byte key can have (unpadded, padded): only those keys are decoded
_ETHEREUM_KEY_TEXT_LENGTHS = (87, 88)


def address_from(owner: dict[str, str]) -> str:
    """The address ao shows for an owner ``{address, key}``: EIP-55 for Ethereum keys."""
    key_text = owner.get("key", "")
    if len(key_text) in _ETHEREUM_KEY_TEXT_LENGTHS:  # an RSA key (683 characters) is not decoded per message
        key = b64url_decode(key_text)
        if len(key) == _ETHEREUM_KEY_LENGTH:
            return ethereum_address(key)
    return owner["address"]


def first_tag(tags: list[dict[str, str]], name: str) -> str | None:
    for tag in tags:
        if tag.get("name") == name:
            return tag.get("value")
    return None


def message_fields(message: dict[str, Any]) -> dict[str, Any]:
    """The fields a message (SU JSON or gateway metadata) contributes to ``msg``."""
    owner = address_from(message["owner"])
    tags = message.get("tags") or []
    from_process = first_tag(tags, "From-Process")
    fields = {
        "Id": message["id"],
        "Signature": message.get("signature"),
        "Data": message.get("data"),
        "Owner": owner,
        "Anchor": message.get("anchor"),
        "From": from_process or owner,
        "Tags": tags,
    }
    if from_process is not None:
        fields["Forwarded-By"] = owner
    return fields


def _first_values(tags: list[dict[str, str]]) -> dict[str, str | None]:
    """Each tag name's first value (what ``first_tag`` answers), in one pass."""
    out: dict[str, str | None] = {}
    for tag in tags:
        name = tag.get("name")
        if name not in out:
            out[name] = tag.get("value")
    return out


def _int_tag(tags: dict[str, str | None], name: str) -> int:
    value = tags.get(name)
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnitError(f"schedule entry's assignment has no integer {name} tag: {value!r}") from None


def from_schedule_entry(node: dict[str, Any]) -> ScheduledMessage:
    """Map one ``{"message", "assignment"}`` schedule node."""
    assignment = node["assignment"]
    a_list = assignment.get("tags") or []
    a_tags = _first_values(a_list)
    nonce = _int_tag(a_tags, "Nonce")
    timestamp = _int_tag(a_tags, "Timestamp")
    height = _int_tag(a_tags, "Block-Height")
    message = node.get("message")
    is_assignment = message is None
    msg: dict[str, Any] = {} if is_assignment else message_fields(message)
    msg.update(
        {
            "Message": a_tags.get("Message"),
            "Target": None if is_assignment else a_tags.get("Process"),
            "Epoch": _int_tag(a_tags, "Epoch"),
            "Nonce": nonce,
            "Timestamp": timestamp,
            "Block-Height": height,
            "Hash-Chain": a_tags.get("Hash-Chain"),
            "Id": a_tags.get("Message") if is_assignment else msg["Id"],
            "Cron": False,
            "Read-Only": False,
        }
    )
    exclude = tuple(t["value"] for t in a_list if t.get("name") == "Exclude")
    return ScheduledMessage(nonce, assignment["id"], is_assignment, exclude, height, timestamp, msg)


def hydrate(entry: ScheduledMessage, meta: dict[str, Any], data: str | None) -> ScheduledMessage:
    """Fill an assignment's msg from the assigned item's gateway metadata (and data unless excluded)."""
    fields = message_fields({**meta, "data": data})
    fields["Target"] = meta.get("recipient") or ""
    for excluded in entry.exclude:
        fields.pop(excluded, None)
    return ScheduledMessage(
        entry.ordinate,
        entry.assignment_id,
        entry.is_assignment,
        entry.exclude,
        entry.block_height,
        entry.timestamp_ms,
        {**entry.msg, **fields},
    )


def evaluation_tags(msg: dict[str, Any]) -> dict[str, Any]:
    """The msg as the VM receives it: tags literally named From or Owner removed."""
    tags = [t for t in msg.get("Tags") or [] if t.get("name") not in ("From", "Owner")]
    return {**msg, "Tags": tags}
