"""The MU's pure crank rules: which outbox entries become which jobs, and the exact items it signs."""

from __future__ import annotations

import pytest

from pyao.data import DataItem, Ed25519Signer, Tag, Wallet, ao
from pyao.errors import AoTagError, Conflict, DataError, RequestError
from pyao.mu import _core as core

MU = Ed25519Signer.from_seed(bytes([5]) * 32)
A, B, C, MOD, ROOT = ("A" * 42 + "A", "B" * 42 + "A", "C" * 42 + "A", "M" * 42 + "A", "R" * 42 + "A")
SU = "S" * 42 + "A"


def t(*pairs):
    return [{"name": n, "value": v} for n, v in pairs]


def names(item):
    return [(tag.name, tag.value) for tag in item.tags]


def outbox_message(**over):
    msg = {
        "Target": B,
        "Anchor": "0" * 31 + "7",
        "Tags": t(("Data-Protocol", "ao"), ("Variant", "ao.TN.1"), ("Type", "Message"), ("Reference", "7"),
                  ("From-Process", "spoof"), ("Action", "Ping"), ("Assignments", "x"), ("From-Module", "spoof")),
        "Data": "hello",
    }  # fmt: skip
    msg.update(over)
    return msg


def test_pushed_message_is_exactly_what_build_tx_makes():
    item = core.build_message(MU, outbox_message(), A, MOD, ROOT)
    assert item.verify() and item.owner == MU.owner
    assert item.target_id == B and item.anchor == b"0" * 31 + b"7" and item.data == b"hello"
    assert names(item) == [
        ("Variant", "ao.TN.1"), ("Reference", "7"), ("Action", "Ping"),
        ("Data-Protocol", "ao"), ("Type", "Message"), ("From-Process", A), ("From-Module", MOD), ("Pushed-For", ROOT),
    ]  # fmt: skip
    # no root (a cron result): no Pushed-For; no data: a single space; no anchor: none
    bare = core.build_message(MU, outbox_message(Data="", Anchor=""), A, MOD, None)
    assert bare.data == b" " and bare.anchor == b"" and names(bare)[-1] == ("From-Module", MOD)
    with pytest.raises(DataError):
        core.build_message(MU, outbox_message(Anchor="short"), A, MOD, ROOT)
    with pytest.raises(DataError):
        core.build_message(MU, outbox_message(Target="not an id"), A, MOD, ROOT)


def test_rsa_wallet_signs_too(rsa_wallet: Wallet):
    item = core.build_message(rsa_wallet, outbox_message(), A, MOD, ROOT)
    assert item.signature_type == 1 and DataItem.from_bytes(item.to_bytes(), verify=True).id == item.id


def test_which_outbox_entries_are_pushed():
    result = {
        "Messages": [
            outbox_message(),
            {"Target": B, "Tags": []},  # no Anchor: not pushed (official rule)
            {"Anchor": "0" * 32, "Tags": []},  # no Target
            {"Target": B, "Anchor": "0" * 32},  # no Tags
            {"Target": B, "Anchor": "0" * 32, "Tags": [{"name": "x", "value": 1}]},  # bad tag value
            "junk",
        ],
        "Spawns": [{"Tags": t(("Module", MOD)), "Data": "d"}, "junk"],
        "Assignments": [{"Processes": [B, C], "Message": ROOT}, {"Processes": B}, {"Message": 5}],
        "Output": "",
    }
    jobs = core.crank_jobs("parent", A, result, ROOT)
    assert [j.kind for j in jobs] == ["message", "spawn", "assign", "assign"]
    assert jobs[0].payload == {"from": A, "msg": outbox_message(), "root": ROOT}
    assert [j.payload["process"] for j in jobs[2:]] == [B, C] and jobs[2].payload["message"] == ROOT
    assert [j.id for j in core.crank_jobs("parent", A, result, ROOT)] == [j.id for j in jobs]  # deterministic
    assert core.crank_jobs("other", A, result, ROOT)[0].id != jobs[0].id
    assert core.crank_jobs("p", A, {"Error": "boom"}, ROOT) == []


def test_assignments_tag():
    assert core.assignments_of(t(("Assignments", f"{B},{C}"))) == [B, C]
    assert core.assignments_of(t(("Assignments", f'["{B}"]'))) == [B]
    assert core.assignments_of(t(("Action", "x"))) == [] and core.assignments_of(t(("Assignments", "nope"))) == []


SPAWN_TAGS = t(("Data-Protocol", "ao"), ("Variant", "ao.TN.1"), ("Type", "Process"), ("From-Process", A),
               ("From-Module", "stale"), ("Module", MOD), ("Reference", "3"), ("Name", "kid"))  # fmt: skip


def test_spawned_process_is_exactly_what_spawn_process_makes():
    item = core.build_process(MU, {"Tags": SPAWN_TAGS, "Data": "child", "Anchor": "0" * 32}, A, MOD, SU, ROOT)
    assert item.verify() and item.target == b"" and item.anchor == b"" and item.data == b"child"
    assert names(item) == [
        ("Variant", "ao.TN.1"), ("From-Process", A), ("From-Module", MOD), ("Module", MOD), ("Reference", "3"),
        ("Name", "kid"), ("Variant", "ao.TN.1"), ("Data-Protocol", "ao"), ("Type", "Process"),
        ("From-Process", A), ("Pushed-For", ROOT), ("Scheduler", SU),
    ]  # fmt: skip
    own = core.build_process(MU, {"Tags": [*SPAWN_TAGS, *t(("Scheduler", C))]}, A, MOD, SU, None)
    assert ao.first_tag(own.tags, "Scheduler") == C and own.data == b" "
    assert "Pushed-For" not in [tag.name for tag in own.tags]
    n1 = core.build_process(MU, {"Tags": t(("Variant", "ao.N.1"), ("Module", MOD))}, A, MOD, SU, None)
    assert names(n1)[2] == ("Variant", "ao.N.1")
    with pytest.raises(AoTagError):
        core.build_process(MU, {"Tags": t(("Name", "no module"))}, A, MOD, SU, None)


def test_spawned_notice_is_exactly_what_build_success_tx_makes():
    item = core.build_spawned(MU, SPAWN_TAGS, A, C)
    assert item.verify() and item.target_id == A and item.anchor == b"" and item.data == b" "
    assert names(item) == [
        ("From-Process", A), ("From-Module", "stale"), ("Module", MOD), ("Reference", "3"), ("Name", "kid"),
        ("Data-Protocol", "ao"), ("Type", "Message"), ("Process", C), ("Action", "Spawned"), ("Variant", "ao.TN.1"),
    ]  # fmt: skip
    # deterministic with Ed25519: a retried spawn makes the same notice, which the SU refuses as a duplicate
    assert core.build_spawned(MU, SPAWN_TAGS, A, C).id == item.id


def test_item_kind_and_helpers():
    def kind(*pairs):
        return core.item_kind(DataItem.create(" ", signer=MU, tags=[Tag(*p) for p in pairs]))

    assert kind(("Data-Protocol", "ao"), ("Type", "Message")) == "Message"
    assert kind(("Data-Protocol", "x"), ("Data-Protocol", "ao"), ("Type", "Process"), ("Type", "Message")) == "Process"
    for bad in ((("Type", "Message"),), (("Data-Protocol", "ao"), ("Type", "Module"))):
        with pytest.raises(AoTagError):
            kind(*bad)
    assert [core.backoff(n, 0.5, 4.0) for n in (1, 2, 3, 4, 5, 100)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert core.is_duplicate(RequestError("scheduler unit refused POST /: Message x already exists"))
    assert core.is_duplicate(Conflict("Deep hash already exists: this pushed message is already scheduled"))
    assert not core.is_duplicate(RequestError("Process x not found"))
    assert core.result_job(A, B, None).id == core.result_job(A, B, ROOT).id != core.result_job(B, A, None).id
