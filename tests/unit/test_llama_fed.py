"""The llama_fed blueprint: three real Lua processes (payment token, Fed, King with llm@1.0 on a tiny
model), every step a message routed between them here as an MU would, with chosen message times."""

from __future__ import annotations

import json

import pytest

from pyao.abc import Limits, ModuleSource, ProcessContext
from pyao.vm import LUA_NATIVE_FORMAT, vm_for
from tests.unit._llm import MODEL_PATH, device_for, tiny_model_file

MU, OWNER, MODULE = "U" * 43, "O" * 43, "M" * 43
TOKEN, FED, KING = "T" * 43, "F" * 43, "K" * 43
A, B = "A" * 43, "B" * 43
UNIT = 10**12
DAY_MS = 86_400_000
T0 = 1_700_000_000_000
PAYOUT = {0: 0, 1: 1, 2: 5, 3: 10, 4: 20, 5: 100}


def tags_of(m):
    return {t["name"]: t["value"] for t in m["Tags"]}


class Net:
    """Three processes and an in-test messenger: outbox messages go to their target, recursively."""

    def __init__(self, device) -> None:
        vm = vm_for(LUA_NATIVE_FORMAT, {"llm@1.0": device})
        module = ModuleSource(MODULE, OWNER, (("Module-Format", LUA_NATIVE_FORMAT),), b"")
        self.procs, self.envs, self.n = {}, {}, 0
        self.to_wallets: list[dict] = []
        for pid in (TOKEN, FED, KING):
            ptags = (("Type", "Process"), ("Module", MODULE), ("Authority", MU))
            self.procs[pid] = vm.instantiate(module, ProcessContext(pid, OWNER, ptags), Limits(10**10, 256 << 20))
            self.envs[pid] = {"Process": {"Id": pid, "Owner": OWNER, "Tags": [{"name": n, "value": v}
                                                                              for n, v in ptags]},
                              "Module": {"Id": MODULE, "Owner": OWNER, "Tags": []}}  # fmt: skip
            assert self.deliver(pid, OWNER, OWNER, [{"name": "Type", "value": "Process"}], "", T0, mid=pid) is not None

    def deliver(self, target, frm, owner, tags, data, ts, mid=None):
        self.n += 1
        msg = {"Id": mid or f"{self.n:043d}", "From": frm, "Owner": owner, "Target": target, "Data": data,
               "Tags": tags, "Timestamp": ts, "Block-Height": 1000 + self.n, "Nonce": self.n, "Epoch": 0,
               "Hash-Chain": f"hc{self.n}", "Cron": False, "Read-Only": False, "Signature": "s",
               "Anchor": ""}  # fmt: skip
        result = self.procs[target].handle(msg, self.envs[target])
        assert result.error is None, result.error
        for out in result.messages:
            if out["Target"] in self.procs:
                self.deliver(out["Target"], target, MU, out["Tags"], out.get("Data", ""), ts)
            else:
                self.to_wallets.append(out)
        return result

    def eval(self, pid, code, ts=T0):
        return self.deliver(pid, OWNER, OWNER, [{"name": "Action", "value": "Eval"}], code, ts)

    def value(self, pid, expr):
        return self.eval(pid, f"print({expr})").output["data"]

    def petition(self, who, text, ts, quantity=UNIT):
        tags = [{"name": "Action", "value": "Transfer"}, {"name": "Recipient", "value": FED},
                {"name": "Quantity", "value": str(quantity)}]  # fmt: skip
        if text is not None:
            tags.append({"name": "X-Petition", "value": text})
        before = len(self.to_wallets)
        self.deliver(TOKEN, who, who, tags, "", ts)
        return [m for m in self.to_wallets[before:] if tags_of(m)["Action"].startswith("Petition-")]


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("fed")
    n = Net(device_for(root, tiny_model_file(root)))
    n.eval(TOKEN, f'require("blueprints.token")\nBalances["{A}"] = "{10 * UNIT}"\nBalances["{B}"] = "{10 * UNIT}"')
    n.eval(FED, f'require("blueprints.llama_fed").fed({{payment_token = "{TOKEN}", king = "{KING}", fee = "{UNIT}"}})')
    n.eval(KING, f'require("blueprints.llama_fed").king({{fed = "{FED}", model = "{MODEL_PATH}"}})')
    assert (n.value(FED, "FedConfig.king"), n.value(KING, "KingConfig.fed")) == (KING, FED)
    return n


def fed_balance(net, who):
    return int(net.value(FED, f'Balances["{who}"] or "0"'))


def test_petition_graded_minted_and_answered_with_reasoning(net):
    [answer] = net.petition(A, "Grant me grass for the llamas.", T0 + 1000)
    tags = tags_of(answer)
    assert tags["Action"] == "Petition-Granted" and answer["Target"] == A
    grade = int(tags["Grade"])
    verdict = json.loads(tags["King-Answer"])  # the constrained answer parses
    assert verdict["grade"] == grade and answer["Data"] == verdict["reason"]
    assert int(tags["Quantity"]) == PAYOUT[grade] * UNIT == fed_balance(net, A)
    assert int(net.value(TOKEN, f'Balances["{A}"]')) == 9 * UNIT  # the fee stays with the Fed
    assert int(net.value(TOKEN, f'Balances["{FED}"]')) == UNIT


def test_one_petition_per_wallet_per_day(net):
    minted = fed_balance(net, A)
    [refused] = net.petition(A, "More grass, please.", T0 + 5000)  # the same day
    assert tags_of(refused)["Action"] == "Petition-Refused" and "per day" in tags_of(refused)["Reason"]
    assert fed_balance(net, A) == minted
    assert int(net.value(TOKEN, f'Balances["{A}"]')) == 9 * UNIT  # refunded
    [granted] = net.petition(A, "A new day, a new petition.", T0 + DAY_MS + 1)
    assert tags_of(granted)["Action"] == "Petition-Granted"
    assert fed_balance(net, A) == minted + int(tags_of(granted)["Quantity"])


@pytest.mark.parametrize(
    ("text", "quantity", "reason"),
    [(None, UNIT, "X-Petition"), ("x" * 251, UNIT, "at most 250"), ("cheap", UNIT // 2, "the fee is")],
)
def test_bad_petitions_are_refunded(net, text, quantity, reason):
    before = int(net.value(TOKEN, f'Balances["{B}"]'))
    [refused] = net.petition(B, text, T0 + 7 * DAY_MS, quantity=quantity)
    assert tags_of(refused)["Action"] == "Petition-Refused" and reason in tags_of(refused)["Reason"]
    assert int(net.value(TOKEN, f'Balances["{B}"]')) == before
    assert fed_balance(net, B) == 0


def test_only_the_king_grades(net):
    supply = net.value(FED, "TotalSupply")
    net.deliver(FED, B, B, [{"name": "Action", "value": "Grade"}, {"name": "Grade", "value": "5"},
                            {"name": "Petition-Id", "value": "x"}], "", T0)  # fmt: skip
    assert net.value(FED, "TotalSupply") == supply and fed_balance(net, B) == 0
