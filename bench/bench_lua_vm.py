"""Native Lua VM throughput: messages/s for a simple handler and for Eval.

The reference is bare lupa calling a Lua function with the same work (a table
write and a string result), without our library, sandbox, JSON or snapshots.
Run: .venv/bin/python bench/bench_lua_vm.py [messages]
"""

from __future__ import annotations

import sys
import time

import lupa.lua53 as lupa

sys.path.insert(0, ".")
from tests.unit._lua import STRANGER, make_process


def rate(n: int, step) -> float:
    t = time.perf_counter()
    for i in range(n):
        step(i)
    return n / (time.perf_counter() - t)


def main(n: int = 2000) -> None:
    bare = lupa.LuaRuntime()
    f = bare.eval("function(i) Count = (Count or 0) + 1; return 'ok ' .. i end")
    ref = rate(n, f)

    rows = []
    for compact in (1, 16):
        p = make_process(compact_every=compact)
        p.eval("Count = 0; Handlers.add('inc', 'Inc', function(m) Count = Count + 1; m.reply({ Data = 'ok' }) end)")
        rows.append(
            (
                f"handler (reply), snapshot every {compact}",
                rate(n, lambda i, p=p: p.send("", frm=STRANGER, Action="Inc")),
            )
        )
        rows.append((f"Eval 'Count + 1', snapshot every {compact}", rate(n, lambda i, p=p: p.eval("Count + 1"))))
    big = make_process()
    big.eval("Balances = {} for i = 1, 10000 do Balances['addr' .. i] = i end")
    big.eval("Handlers.add('inc', 'Inc', function(m) Balances.addr1 = Balances.addr1 + 1 end)")
    rows.append(
        (
            "handler, 10k-entry state, snapshot every 1",
            rate(n // 10, lambda i: big.send("", frm=STRANGER, Action="Inc")),
        )
    )
    big16 = make_process(compact_every=16)
    big16.eval("Balances = {} for i = 1, 10000 do Balances['addr' .. i] = i end")
    big16.eval("Handlers.add('inc', 'Inc', function(m) Balances.addr1 = Balances.addr1 + 1 end)")
    rows.append(
        (
            "handler, 10k-entry state, snapshot every 16",
            rate(n // 10, lambda i: big16.send("", frm=STRANGER, Action="Inc")),
        )
    )
    err = make_process()
    rows.append(("failing Eval (rollback = rebuild)", rate(n // 10, lambda i: err.eval("error('x')"))))

    print(f"bare lupa call (reference): {ref:12,.0f} calls/s")
    for name, r in rows:
        print(f"{name:45s} {r:10,.0f} msg/s   ratio to bare lupa 1/{ref / r:,.0f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
