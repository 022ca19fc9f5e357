"""Helpers for the native Lua VM tests: a process, and messages shaped as the CU builds them (spec §2.4)."""

from __future__ import annotations

from pyao.abc import Limits, ModuleSource, ProcessContext
from pyao.vm import LUA_NATIVE_FORMAT, vm_for

PID = "P" * 43
OWNER = "O" * 43
MODULE = "M" * 43
MU = "U" * 43  # the messenger's address: an Authority of the process
STRANGER = "S" * 43
OTHER = "Q" * 43  # another process


def make_process(
    source: str = "", *, tags=(), compute: int = 10**7, memory: int = 64 << 20, compact_every: int = 1, devices=None
):
    module = ModuleSource(id=MODULE, owner=OWNER, tags=(("Module-Format", LUA_NATIVE_FORMAT),), data=source.encode())
    ptags = (("Type", "Process"), ("Module", MODULE), ("Authority", MU), *tags)
    proc = ProcessContext(id=PID, owner=OWNER, tags=ptags)
    vm = vm_for(LUA_NATIVE_FORMAT, devices)
    vm.compact_every = compact_every
    return Process(vm.instantiate(module, proc, Limits(compute=compute, memory=memory)), ptags)


class Process:
    """A process instance plus a message counter, so tests read like a conversation."""

    def __init__(self, instance, ptags) -> None:
        self.instance = instance
        self.env = {
            "Process": {"Id": PID, "Owner": OWNER, "Tags": [{"name": n, "value": v} for n, v in ptags]},
            "Module": {"Id": MODULE, "Owner": OWNER, "Tags": [{"name": "Module-Format", "value": LUA_NATIVE_FORMAT}]},
        }
        self.nonce = 0
        self.booted = False

    def boot(self, data: str = "", tags=()):
        self.booted = True
        ptags = [{"name": "Type", "value": "Process"}, *({"name": n, "value": v} for n, v in tags)]
        return self.instance.handle(message(PID, data, ptags, nonce=0), self.env)

    def send(self, data: str = "", frm: str = OWNER, owner: str | None = None, **tags):
        if not self.booted:
            self.boot()
        self.nonce += 1
        tag_list = [{"name": k.replace("_", "-"), "value": v} for k, v in tags.items()]
        return self.instance.handle(
            message(f"msg-{self.nonce:04d}", data, tag_list, frm=frm, owner=owner, nonce=self.nonce), self.env
        )

    def eval(self, code: str, frm: str = OWNER):
        return self.send(code, frm=frm, Action="Eval")

    def value(self, expr: str) -> str:
        r = self.eval(expr)
        assert r.error is None, r.error
        return r.output["data"]


def message(mid, data, tags, frm=OWNER, owner=None, nonce=0, ts=None):
    return {
        "Id": mid,
        "From": frm,
        "Owner": owner or frm,
        "Target": PID,
        "Data": data,
        "Tags": tags,
        "Timestamp": ts if ts is not None else 1_700_000_000_000 + nonce * 1000,
        "Block-Height": 1000 + nonce,
        "Nonce": nonce,
        "Epoch": 0,
        "Hash-Chain": "hc",
        "Cron": False,
        "Read-Only": False,
        "Signature": "sig",
        "Anchor": "",
    }
