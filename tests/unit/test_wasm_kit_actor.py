"""The kit's ``actor`` module (kit/wasm/actor.c) in the WASM VM, wasm32 and wasm64: the token
(Transfer with Debit-Notice and Credit-Notice, Transfer-Error, Balance, Balances), cron ticks to a
sink, Spawn and Spawned, and the plain actions the aoconnect scenarios use in place of Eval."""

from __future__ import annotations

import json

import pytest

from tests.unit._wasm import MODULE, OWNER, PID, W32, W64, make

FORMATS = [W32, W64]
ALICE, BOB, CAROL = "A" * 43, "B" * 43, "C" * 43


def env(**process_tags: str) -> dict:
    tags = [{"name": "Type", "value": "Process"}, {"name": "Name", "value": "kit-actor"}]
    tags += [{"name": name.replace("_", "-"), "value": value} for name, value in process_tags.items()]
    return {
        "Process": {"Id": PID, "Owner": OWNER, "Tags": tags},
        "Module": {"Id": MODULE, "Owner": OWNER, "Tags": [{"name": "Token-Supply", "value": "7"}]},
    }


class Actor:
    """One actor process, with a message counter for ids and nonces."""

    def __init__(self, fmt: str, **process_tags: str) -> None:
        self.process = make("actor", fmt)
        self.env = env(**process_tags)
        self.nonce = 0

    def send(self, action: str | None, data: str = "", sender: str = OWNER, cron: bool = False, **tags: str):
        self.nonce += 1
        pairs = ([("Action", action)] if action else []) + [(k.replace("_", "-"), v) for k, v in tags.items()]
        msg = {
            "Id": f"{self.nonce:043d}",
            "Owner": sender,
            "From": sender,
            "Tags": [{"name": k, "value": v} for k, v in pairs],
            "Data": data,
            "Timestamp": 1_700_000_000_000 + self.nonce,
            "Block-Height": 1000,
            "Nonce": self.nonce,
            "Cron": cron,
        }
        if cron:
            del msg["Id"], msg["Data"]
        return self.process.handle(msg, self.env)

    def ask(self, action: str, sender: str = OWNER, **tags: str) -> dict:
        """The one reply an action sends, as {Target, Data, tag: value...}."""
        r = self.send(action, sender=sender, **tags)
        assert r.ok, r.error
        (reply,) = r.messages
        return flat(reply)


def flat(message: dict) -> dict:
    out = {"Target": message["Target"], "Data": message["Data"]}
    out.update({t["name"]: t["value"] for t in message["Tags"]})
    return out


def pick(message: dict, *names: str) -> tuple:
    return tuple(message.get(name) for name in names)


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_transfer_notices_errors_and_balances(fmt):
    token = Actor(fmt, Token_Supply="1000", Ticker="KIT")
    assert token.send(None).output == ""  # the process message: the supply is minted to the process
    assert json.loads(token.ask("Balances")["Data"]) == {PID: "1000"}

    paid = token.send("Transfer", sender=PID, Recipient=ALICE, Quantity="250")
    assert paid.ok and paid.output == ""
    debit, credit = map(flat, paid.messages)
    assert pick(debit, "Target", "Action", "Recipient", "Quantity") == (PID, "Debit-Notice", ALICE, "250")
    assert pick(credit, "Target", "Action", "Sender", "Quantity") == (ALICE, "Credit-Notice", PID, "250")
    anchors = [m["Anchor"] for m in paid.messages]
    assert all(len(a) == 32 and a.isdigit() for a in anchors) and len(set(anchors)) == 2

    balance = token.ask("Balance", Recipient=ALICE)
    assert pick(balance, "Action", "Balance", "Account", "Data") == ("Balance", "250", ALICE, "250")
    assert balance["Ticker"] == "KIT" and balance["Target"] == OWNER
    assert token.ask("Balance", sender=PID)["Balance"] == "750"  # no Recipient: the sender's own
    assert token.ask("Balance", Target=BOB)["Balance"] == "0"

    for sender, tags, why in [
        (ALICE, {"Recipient": BOB, "Quantity": "251"}, "Insufficient Balance!"),
        (BOB, {"Recipient": ALICE, "Quantity": "1"}, "Insufficient Balance!"),
        (ALICE, {"Recipient": BOB, "Quantity": "0"}, "Quantity must be a positive integer"),
        (ALICE, {"Recipient": BOB, "Quantity": "-5"}, "Quantity must be a positive integer"),
        (ALICE, {"Recipient": BOB, "Quantity": "1.5"}, "Quantity must be a positive integer"),
        (ALICE, {"Recipient": BOB, "Quantity": "99999999999999999999999"}, "Quantity must be a positive integer"),
        (ALICE, {"Quantity": "5"}, "Recipient is required"),
    ]:
        refused = token.send("Transfer", sender=sender, **tags)
        (error,) = map(flat, refused.messages)
        assert pick(error, "Target", "Action", "Error") == (sender, "Transfer-Error", why), tags
        assert error["Message-Id"] == f"{token.nonce:043d}"
    assert json.loads(token.ask("Balances")["Data"]) == {PID: "750", ALICE: "250"}

    token.send("Transfer", sender=ALICE, Recipient=BOB, Quantity="250")  # all of it
    assert json.loads(token.ask("Balances")["Data"]) == {PID: "750", ALICE: "0", BOB: "250"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_supply_holder_tag_and_balances_as_integer_strings(fmt):
    token = Actor(fmt, Token_Supply="18446744073709551615", Token_Holder=CAROL)
    assert json.loads(token.ask("Balances")["Data"]) == {CAROL: "18446744073709551615"}
    token.send("Transfer", sender=CAROL, Recipient=ALICE, Quantity="18446744073709551614")
    assert json.loads(token.ask("Balances")["Data"]) == {CAROL: "1", ALICE: "18446744073709551614"}
    no_supply = Actor(fmt)  # the module's tags are not the process's
    assert json.loads(no_supply.ask("Balances")["Data"]) == {}


@pytest.mark.parametrize("fmt", FORMATS)
def test_notices_are_recorded_and_pay_back_answers_a_credit(fmt):
    wallet = Actor(fmt, Pay_Back="100")
    kick = wallet.send("Pay", Recipient=BOB, Quantity="250", Token=ALICE)
    assert kick.output == "sent"
    assert [(m["Target"], m["Action"], m["Recipient"], m["Quantity"]) for m in map(flat, kick.messages)] == [
        (ALICE, "Transfer", BOB, "250")
    ]
    assert [flat(m)["Target"] for m in wallet.send("Pay", Recipient=BOB, Quantity="1").messages] == [PID]

    credit = wallet.send("Credit-Notice", sender=ALICE, Sender=BOB, Quantity="250")
    assert credit.output == f"credit 250 from {BOB}"
    (back,) = map(flat, credit.messages)
    assert pick(back, "Target", "Action", "Recipient", "Quantity") == (ALICE, "Transfer", BOB, "100")
    debit = wallet.send("Debit-Notice", sender=ALICE, Recipient=BOB, Quantity="100")
    assert debit.output == f"debit 100 to {BOB}" and debit.messages == ()
    assert json.loads(wallet.ask("Notices")["Data"]) == [f"credit:{ALICE}:{BOB}:250", f"debit:{ALICE}:{BOB}:100"]

    plain = Actor(fmt)  # no Pay-Back: a credit is only recorded
    assert plain.send("Credit-Notice", sender=ALICE, Sender=BOB, Quantity="5").messages == ()
    assert plain.send("Credit-Notice", sender=ALICE, Sender=BOB, Quantity="x").error
    assert json.loads(plain.ask("Notices")["Data"]) == [f"credit:{ALICE}:{BOB}:5"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_cron_ticks_count_and_go_to_the_sink_once_set(fmt):
    cron = Actor(fmt)
    first = cron.send("Cron", cron=True)
    assert first.output == "cron tick 1" and first.messages == ()
    assert cron.send("Set-Sink", Sink=BOB).output == "cron ready"
    assert cron.send("Set-Sink").error  # no Sink: refused, the sink stays
    second = cron.send("Cron", cron=True)
    (tick,) = map(flat, second.messages)
    assert second.output == "cron tick 2" and pick(tick, "Target", "Action", "Data") == (BOB, "Tick", "2")

    sink = Actor(fmt)
    for sender in (ALICE, ALICE, BOB):
        assert sink.send("Tick", sender=sender).ok
    assert json.loads(sink.ask("Ticks")["Data"]) == [ALICE, ALICE, BOB]


@pytest.mark.parametrize("fmt", FORMATS)
def test_spawn_a_child_of_this_module_and_record_spawned(fmt):
    parent = Actor(fmt)
    kick = parent.send("Spawn", data="child data", Child_Name="kit-child")
    assert kick.output == "spawning" and kick.messages == ()
    assert kick.spawns == (
        {"Tags": [{"name": "Module", "value": MODULE}, {"name": "Name", "value": "kit-child"}], "Data": "child data"},
    )
    child = "K" * 43
    done = parent.send("Spawned", sender=ALICE, Name="kit-child", Process=child)
    assert done.output == f"spawned {child}"
    assert parent.send("Spawned", sender=ALICE).error  # no Process tag
    assert json.loads(parent.ask("Children")["Data"]) == [child]


@pytest.mark.parametrize("fmt", FORMATS)
def test_plain_actions_info_ping_multiply_counter_notes(fmt):
    a = Actor(fmt)
    assert a.send("Info").output == f"{OWNER}|kit-actor"
    spawned = Actor(fmt, From_Process=ALICE)  # as aos: a spawned process's owner is its spawner
    assert spawned.send("Info").output == f"{ALICE}|kit-actor"
    assert a.ask("Ping", sender=BOB) | {"Reference": None} == {
        "Target": BOB, "Data": "pong:", "Action": "Pong", "Reference": None
    }  # fmt: skip
    assert flat(a.send("Ping", data='say "hi"', sender=BOB).messages[0])["Data"] == 'pong:say "hi"'
    assert a.send("Multiply", X="6", Y="7").output == "42"
    assert a.send("Multiply", X="4294967296", Y="2").error  # over 2^32: refused, not wrapped
    assert [a.send("Inc").output for _ in range(3)] == ["counter 1", "counter 2", "counter 3"]
    assert a.ask("Get")["Data"] == "3" and a.ask("Get")["Action"] == "Got"
    assert a.send("Count").output == "3"
    noted = a.send("Note", data='line "one"\\n')
    assert noted.output == f"noted {a.nonce:043d}"
    assert json.loads(a.ask("Notes")["Data"]) == [f"{a.nonce - 1:043d}:" + 'line "one"\\n']
    assert a.send("No-Such-Action").output == ""


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_input_is_an_error_and_changes_nothing(fmt):
    a = Actor(fmt)
    a.send("Inc")
    assert a.send("Note", data="x" * 400).error  # longer than a list item
    for _ in range(256):
        assert a.send("Tick", sender=ALICE).ok
    full = a.send("Tick", sender=BOB)
    assert full.error == "Ticks is full"
    assert len(json.loads(a.ask("Ticks")["Data"])) == 256
    assert a.send("Count").output == "1"
    big = a.send("Ticks")  # 256 ids in one reply fit
    assert big.ok
