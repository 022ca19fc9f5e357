"""The official ``@permaweb/aoconnect`` drives WASM processes on ``pyao up``: our kit's modules,
published on the gateway with their Module-Format tag.

* ``aoconnect-wasm.mjs``: spawn, message, result, dryrun and results on the ``echo`` module.
* ``aoconnect-wasm-e2e.mjs``: the six scenarios of the MU issue (as ``test_aoconnect_e2e.py`` runs
  them on aos Lua) on the ``actor`` module (kit/wasm/actor.c), which has no Eval: each scenario
  sends actions the module understands where the Lua scenarios send Eval, and the tests assert the
  same things the Lua tests do. Every request aoconnect makes must be one it is documented to make,
  answered 2xx, and none may leave this machine.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from pyao.data import DataItem, ao
from pyao.testing.network import running_network
from tests.interop.test_aoconnect_e2e import _documented, _is_id, _kind
from tests.unit._wasm import W32, W64, kit_bytes

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SCRIPT = "aoconnect-wasm-e2e.mjs"


def _publish(net, name: str, fmt: str) -> str:
    module = DataItem.create(kit_bytes(name, fmt), signer=net.wallet, tags=ao.module_tags(fmt))
    r = httpx.post(net.gateway + "/tx", content=module.to_bytes(), timeout=30)
    assert r.status_code == 200, r.text
    return module.id


@pytest.fixture(scope="module", params=[W32, W64], ids=["wasm32", "wasm64"])
def network(request, node_harness, tmp_path_factory):
    """``pyao up`` (1 s MU cron poll) with the kit's echo and actor modules published, built for
    wasm32 (``wasm32-unknown-emscripten4``) or wasm64 (``wasm64-unknown-emscripten-draft_2024_02_15``)."""
    fmt = request.param
    root = tmp_path_factory.mktemp("aoconnect-wasm")
    with running_network(root, env={"PYAO_MU_CRON_INTERVAL_S": "1"}) as net:
        config = {
            "gateway": net.gateway,
            "graphql": net.gateway + "/graphql",
            "mu": net.mu,
            "cu": net.cu,
            "wallet": str(net.wallet_path),
            "owner": net.wallet.address,
            "scheduler": net.scheduler_address(),
            "mu_address": net.mu_address(),
            "timeout_ms": 20000,
        }
        modules = {name: _publish(net, name, fmt) for name in ("echo", "actor")}
        yield {"config": config, "modules": modules, "js": node_harness, "log": net.log_path}


def _node(network, args: list[str], config: dict) -> dict:
    done = subprocess.run(
        ["node", *args], input=json.dumps(config), cwd=network["js"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_aoconnect_drives_a_wasm_process(network):
    out = _node(network, ["aoconnect-wasm.mjs"], {**network["config"], "module": network["modules"]["echo"]})
    assert out["blocked"] == [] and out["ok"], out.get("error")
    result = out["result"]
    assert result["Output"] == "hello from aoconnect" and "Error" not in result
    (reply,) = result["Messages"]
    assert reply["Target"] == network["config"]["owner"] and reply["Data"] == "hello from aoconnect"
    assert out["dryrun"]["Output"] == "dry"
    outputs = [edge["node"]["Output"] for edge in out["results"]["edges"]]
    assert outputs == ["spawned", "hello from aoconnect"]


def run_scenario(network, name: str) -> dict:
    """Run one scenario on the actor module; check its requests; return what it observed."""
    config = {**network["config"], "module": network["modules"]["actor"]}
    out = _node(network, [SCRIPT, name, "-"], config)
    assert out["blocked"] == [], out["blocked"]
    assert out["ok"], f"{out['error']}\n--- pyao up log:\n{network['log'].read_text()[-4000:]}"
    for request in out["requests"]:
        assert _documented(config, request), request
    assert out["retried"] == [], out["retried"]
    out["requests_by_kind"] = [_kind(config, r) for r in out["requests"]]
    return out


# ---------------------------------------------------------------- the six scenarios


def test_spawn_message_and_result(network):
    out = run_scenario(network, "spawn-message-result")
    seen, owner = out["observed"], network["config"]["owner"]
    pid = seen["process"]
    assert _is_id(pid)
    assert seen["info_error"] is None and seen["info_output"] == f"{owner}|wasm-basic"
    assert seen["ping_error"] is None
    assert seen["ping_messages"] == [{"Target": owner, "Data": "pong:hello", "Action": "Pong"}]
    assert len(seen["ping_anchor"]) == 32  # what the MU needs to push it
    assert seen["multiply_output"] == "42"
    # spawn = the GraphQL module lookup, then POST MU; each message = POST MU, then GET CU result
    assert out["requests_by_kind"] == ["POST graphql", "POST mu/"] + ["POST mu/", "GET cu/result"] * 3
    first_result = out["requests"][3]["url"]
    assert first_result == f"{network['config']['cu']}/result/{seen['info_id']}?process-id={pid}"


def test_results_pages_both_ways_and_dryrun_changes_nothing(network):
    out = run_scenario(network, "results-dryrun")
    seen, owner = out["observed"], network["config"]["owner"]
    counters = [f"counter {i}" for i in range(1, 5)]
    everything = ["", f"{owner}|wasm-results", *counters]  # the process message prints nothing
    assert seen["last_inc"] == "counter 4"
    assert seen["all_count"] == 6 and seen["all_outputs"] == everything
    cursors = seen["all_cursors_decoded"]
    assert [c["ordinate"] for c in cursors] == [str(n) for n in range(6)]
    assert {c["sort"] for c in cursors} == {"ASC"}
    assert [c["timestamp"] for c in cursors] == sorted(c["timestamp"] for c in cursors)
    for pages, expected in ((seen["asc_pages"], everything), (seen["desc_pages"], everything[::-1])):
        assert all(len(page) <= 2 for page in pages), pages
        assert [output for page in pages for output in page] == expected
    assert seen["window_outputs"] == ["counter 1", "counter 2"]  # from exclusive, to inclusive
    assert seen["desc_limit2"] == ["counter 4", "counter 3"]

    assert (seen["dryrun_get"], seen["dryrun_get_action"], seen["dryrun_get_error"]) == ("4", "Got", None)
    assert seen["dryrun_plain"] == "4" and seen["dryrun_plain_target"] == "1234"  # aoconnect's default Owner
    assert seen["dryrun_inc_output"] == "counter 5"  # the dry-run ran the action ...
    assert seen["dryrun_after"] == "4" and seen["count_after"] == "4"  # ... and its state did not stick
    assert seen["count_after_dryruns"] == 7  # only the Count message was added

    kinds = out["requests_by_kind"]
    assert kinds.count("POST cu/dry-run") == 4
    results_urls = [r["url"] for r in out["requests"] if _kind(network["config"], r) == "GET cu/results"]
    assert results_urls[0].endswith(f"/results/{seen['process']}?sort=ASC&limit=100")
    assert any("from=" in url and "to=" in url for url in results_urls)


def test_monitor_a_cron_process_that_sends_to_another(network):
    out = run_scenario(network, "cron-monitor")
    seen = out["observed"]
    cron, sink = seen["cron"], seen["sink"]
    assert seen["cron_ready"] == "cron ready"
    assert _is_id(seen["monitor_id"]) and _is_id(seen["unmonitor_id"])
    assert len(seen["sink_ticks"]) >= 2
    assert set(seen["sink_ticks"]) == {cron}  # From = the cron process (pushed by the MU)
    ticks = [o for o in seen["cron_results_outputs"] if o.startswith("cron tick")]
    assert ticks[:2] == ["cron tick 1", "cron tick 2"]  # the module counts every tick, before the sink too
    sent = seen["cron_results_messages"]
    assert sent and {(target, action) for target, action, _ in sent} == {(sink, "Tick")}
    numbers = [int(data) for _, _, data in sent]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert seen["cron_cursor_has_cron"] is True
    kinds = out["requests_by_kind"]
    assert kinds.count("POST mu/monitor") == 1 and kinds.count("DELETE mu/monitor") == 1
    monitor_urls = {r["url"] for r in out["requests"] if "/monitor/" in r["url"]}
    assert monitor_urls == {f"{network['config']['mu']}/monitor/{cron}"}


def test_assign_an_existing_message_to_another_process(network):
    out = run_scenario(network, "assign")
    seen = out["observed"]
    note, second = seen["message"], seen["second"]
    assert seen["first_result"] == f"noted {note}"
    assert _is_id(seen["assignment_id"])
    assert seen["second_notes"] == [f"{note}:remember me"] == seen["first_notes"]
    assert seen["second_result_error"] is None and seen["second_result"] == f"noted {note}"
    assign_urls = [r["url"] for r in out["requests"] if _kind(network["config"], r) == "POST mu/assign"]
    assert set(assign_urls) == {f"{network['config']['mu']}?process-id={second}&assign={note}"}


def test_transfer_between_two_token_processes(network):
    out = run_scenario(network, "token")
    seen, owner = out["observed"], network["config"]["owner"]
    alpha, beta = seen["alpha"], seen["beta"]
    assert seen["kick_output"] == "sent" and seen["kick_messages"] == [[alpha, "Transfer"]]
    # alpha's ledger: alpha paid 250 to beta, beta paid 100 back; beta's own ledger is untouched
    assert seen["alpha_balances"] == {alpha: "850", beta: "150"}
    assert seen["beta_balances"] == {beta: "1000"}
    assert seen["beta_balance_on_alpha"] == "150" == seen["beta_balance_data"]
    # each notice comes From the ledger (alpha)
    assert sorted(seen["alpha_notices"]) == sorted([f"debit:{alpha}:{beta}:250", f"credit:{alpha}:{beta}:100"])
    assert sorted(seen["beta_notices"]) == sorted([f"credit:{alpha}:{alpha}:250", f"debit:{alpha}:{alpha}:100"])
    # and both show in each process's results
    assert sorted(map(tuple, seen["alpha_history"]["sent"])) == sorted(
        [
            (alpha, "Transfer"),
            (alpha, "Debit-Notice"),
            (beta, "Credit-Notice"),
            (beta, "Debit-Notice"),
            (alpha, "Credit-Notice"),
        ]
    )
    assert seen["beta_history"]["sent"] == [[alpha, "Transfer"]]
    assert {f"debit 250 to {beta}", f"credit 100 from {beta}"} <= set(seen["alpha_history"]["printed"])
    assert {f"credit 250 from {alpha}", f"debit 100 to {alpha}"} <= set(seen["beta_history"]["printed"])
    # the wallet holds nothing on alpha's ledger: a Transfer-Error to it, and no balance moved
    assert seen["refused"] == [[owner, "Transfer-Error", "Insufficient Balance!"]]
    assert seen["alpha_balances_after"] == seen["alpha_balances"]


def test_a_process_spawns_another_and_gets_spawned(network):
    out = run_scenario(network, "spawn-from-process")
    seen = out["observed"]
    parent = seen["parent"]
    assert seen["kick_output"] == "spawning" and seen["kick_spawns"] == 1
    assert len(seen["children"]) == 1 and _is_id(seen["children"][0])
    assert f"spawned {seen['children'][0]}" in seen["parent_outputs"]
    assert seen["child_results"] >= 1
    assert seen["child_owner_name"] == f"{parent}|wasm-child"  # its owner is the spawner
