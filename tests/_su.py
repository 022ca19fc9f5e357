"""Helpers for the SU tests: an independent hash-chain checker and schedule-shape checks.

The checker is written from the protocol text (spec §7), on purpose without
importing pyao.su, so a mistake in the SU cannot hide itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

ID = re.compile(r"^[A-Za-z0-9_-]{43}$")
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def _dec(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _enc(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def tag(tags: list[dict[str, str]], name: str) -> str | None:
    return next((t["value"] for t in tags if t["name"] == name), None)


def verify_chain(process_id: str, nodes: list[dict[str, Any]]) -> None:
    """Nonces 0, 1, 2, … with Hash-Chain_0 = sha256(pid) and
    Hash-Chain_n = sha256(prev assignment id ‖ prev Hash-Chain)."""
    expected = _enc(hashlib.sha256(_dec(process_id)).digest())
    previous_ts = 0
    for n, node in enumerate(nodes):
        tags = node["assignment"]["tags"]
        assert tag(tags, "Nonce") == str(n), f"slot {n} has Nonce {tag(tags, 'Nonce')}"
        assert tag(tags, "Process") == process_id
        assert tag(tags, "Hash-Chain") == expected, f"hash chain breaks at nonce {n}"
        ts = int(tag(tags, "Timestamp"))
        assert ts >= previous_ts, f"timestamp goes back at nonce {n}"
        previous_ts = ts
        expected = _enc(hashlib.sha256(_dec(node["assignment"]["id"]) + _dec(expected)).digest())


def check_owner(owner: dict[str, str]) -> None:
    assert list(owner) == ["address", "key"]
    assert ID.match(owner["address"]) and B64URL.match(owner["key"])
    assert owner["address"] == _enc(hashlib.sha256(_dec(owner["key"])).digest())


def check_tags(tags: list[dict[str, str]]) -> None:
    assert isinstance(tags, list)
    for t in tags:
        assert list(t) == ["name", "value"] and isinstance(t["name"], str) and isinstance(t["value"], str)


def check_assignment(a: dict[str, Any]) -> None:
    assert list(a) == ["id", "owner", "tags", "signature", "anchor", "target"]
    assert ID.match(a["id"]) and B64URL.match(a["signature"])
    check_owner(a["owner"])
    check_tags(a["tags"])
    names = [t["name"] for t in a["tags"]]
    assert names[:9] == [
        "Process", "Epoch", "Nonce", "Hash-Chain", "Block-Height", "Timestamp", "Data-Protocol", "Type", "Variant",
    ]  # fmt: skip
    assert re.fullmatch(r"\d{12}", tag(a["tags"], "Block-Height"))
    assert a["anchor"] is None or isinstance(a["anchor"], str)
    assert a["target"] == ""


def check_message(m: dict[str, Any], *, process: bool) -> None:
    assert list(m) == ["id", "owner", "data", "tags", "signature", "anchor", "target"]
    assert ID.match(m["id"]) and B64URL.match(m["signature"])
    check_owner(m["owner"])
    check_tags(m["tags"])
    assert m["data"] is None or isinstance(m["data"], str)
    assert m["anchor"] is None or isinstance(m["anchor"], str)
    if process:
        assert m["target"] is None or ID.match(m["target"])
    else:
        assert isinstance(m["target"], str)


def check_node(node: dict[str, Any], *, first: bool = False) -> None:
    assert list(node) == ["message", "assignment"]
    check_assignment(node["assignment"])
    tags = node["assignment"]["tags"]
    if first:
        assert tag(tags, "Nonce") == "0" and tag(tags, "Message") is None
        check_message(node["message"], process=True)
    elif node["message"] is not None:
        assert tag(tags, "Message") == node["message"]["id"]
        check_message(node["message"], process=False)


def check_page(page: dict[str, Any]) -> None:
    assert list(page) == ["page_info", "edges"]
    assert list(page["page_info"]) == ["has_next_page"] and isinstance(page["page_info"]["has_next_page"], bool)
    for edge in page["edges"]:
        assert list(edge) == ["node", "cursor"]
        assert edge["cursor"] == tag(edge["node"]["assignment"]["tags"], "Timestamp")


async def walk_schedule(client: Any, pid: str, limit: int = 7) -> list[dict[str, Any]]:
    """Every node of a schedule, read page by page as the CU does (from = last cursor)."""
    nodes: list[dict[str, Any]] = []
    params: dict[str, Any] = {"process-id": pid, "limit": limit}
    while True:
        r = await client.get(f"/{pid}", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        check_page(page)
        nodes.extend(edge["node"] for edge in page["edges"])
        if not page["page_info"]["has_next_page"]:
            return nodes
        params["from"] = page["edges"][-1]["cursor"]
