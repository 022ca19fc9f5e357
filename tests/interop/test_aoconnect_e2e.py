"""The official ``@permaweb/aoconnect`` (0.0.98, ``MODE: 'legacy'``) drives a running ``pyao up``.

One ``pyao up`` per module (free loopback ports, a temporary data dir and wallet, the MU's cron
poll at 1 s). Each test runs one scenario of ``interop/js/aoconnect-e2e.mjs``, which prints one
JSON object: what it observed, every request aoconnect made (method, url, status, and the body of
any answer that was not 2xx) and any request it refused because it left this machine. The test
asserts on it field by field, and that every request is one aoconnect is documented to make
(spec §4.1) and was answered 2xx.
"""

from __future__ import annotations

import json
import re
import subprocess
from urllib.parse import parse_qs, urlsplit

import pytest

from pyao.testing.network import running_network

pytestmark = [pytest.mark.interop, pytest.mark.slow]

SCRIPT = "aoconnect-e2e.mjs"
ID = re.compile(r"^[A-Za-z0-9_-]{43}$")


@pytest.fixture(scope="module")
def network(node_harness, tmp_path_factory):
    """``pyao up`` as a subprocess, with a 1 s MU cron poll."""
    root = tmp_path_factory.mktemp("aoconnect-e2e")
    with running_network(root, env={"PYAO_MU_CRON_INTERVAL_S": "1"}) as net:
        config = {
            "gateway": net.gateway,
            "graphql": net.gateway + "/graphql",
            "mu": net.mu,
            "cu": net.cu,
            "su": net.su,
            "wallet": str(net.wallet_path),
            "owner": net.wallet.address,
            "module": net.module_id,
            "scheduler": net.scheduler_address(),
            "mu_address": net.mu_address(),
            "timeout_ms": 20000,
        }
        assert config["scheduler"] in net.banner and config["mu_address"] in net.banner, net.banner
        yield {"config": config, "js": node_harness, "log": net.log_path}


def run_scenario(network, name: str) -> dict:
    """Run one scenario; check the requests it made (each documented and answered as aoconnect
    expects, none retried); return what it observed."""
    config = network["config"]
    done = subprocess.run(
        ["node", SCRIPT, name, "-"],
        input=json.dumps(config),
        cwd=network["js"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["blocked"] == [], out["blocked"]
    assert out["ok"], f"{out['error']}\n--- pyao up log:\n{network['log'].read_text()[-4000:]}"
    for request in out["requests"]:
        assert _documented(config, request), request
    assert out["retried"] == [], out["retried"]
    out["requests_by_kind"] = [_kind(config, r) for r in out["requests"]]
    return out


def _kind(config: dict, request: dict) -> str:
    """``"<METHOD> <unit><path>"``, e.g. ``"GET cu/result"``; ``"?"`` for an unknown request."""
    url, method = request["url"], request["method"]
    for unit in ("graphql", "mu", "cu"):
        base = config[unit]
        if url == base or url.startswith(base + "/") or url.startswith(base + "?"):
            path = urlsplit(url).path
            if unit == "graphql":
                return f"{method} graphql"
            if unit == "mu":
                query = parse_qs(urlsplit(url).query)
                if path in ("", "/"):
                    return f"{method} mu/assign" if "assign" in query else f"{method} mu/"
                return f"{method} mu/monitor" if path.startswith("/monitor/") else "?"
            return f"{method} cu/{path.strip('/').split('/')[0]}"
    return "?"


# spec §4.1: every request aoconnect (legacy) makes, and what a good answer is
DOCUMENTED = {
    "POST graphql": {200},
    "POST mu/": {200, 202},
    "POST mu/assign": {200, 202},
    "POST mu/monitor": {200},
    "DELETE mu/monitor": {200},
    "GET cu/result": {200},
    "GET cu/results": {200},
    "POST cu/dry-run": {200},
}


def _documented(config: dict, request: dict) -> bool:
    return request["status"] in DOCUMENTED.get(_kind(config, request), set())


def _is_id(value) -> bool:
    return isinstance(value, str) and bool(ID.match(value))


# ---------------------------------------------------------------- scenarios


def test_spawn_message_eval_and_result(network):
    out = run_scenario(network, "spawn-message-result")
    seen, owner = out["observed"], network["config"]["owner"]
    pid = seen["process"]
    assert _is_id(pid)
    assert seen["eval_error"] is None
    assert seen["eval_output"] == "handler added"
    assert "e2e-basic" in seen["eval_prompt"]
    assert seen["ping_error"] is None
    assert seen["ping_messages"] == [{"Target": owner, "Data": "pong:hello", "Action": "Pong"}]
    assert seen["sum_output"] == "42"
    # spec §4.1: spawn = the GraphQL module lookup, then POST MU; message = POST MU; result = GET CU
    assert out["requests_by_kind"] == [
        "POST graphql",
        "POST mu/",
        "POST mu/",
        "GET cu/result",
        "POST mu/",
        "GET cu/result",
        "POST mu/",
        "GET cu/result",
    ]
    first_result = out["requests"][3]["url"]
    assert first_result == f"{network['config']['cu']}/result/{seen['eval_id']}?process-id={pid}"


def test_results_pages_both_ways_and_dryrun_changes_nothing(network):
    out = run_scenario(network, "results-dryrun")
    seen = out["observed"]
    counters = [f"counter {i}" for i in range(1, 5)]
    # the process message (nothing printed), the Eval, four Incs
    everything = ["", "ok", *counters]
    assert seen["last_inc"] == "counter 4"
    assert seen["all_count"] == 6
    assert seen["all_outputs"] == everything
    cursors = seen["all_cursors_decoded"]
    assert [c["ordinate"] for c in cursors] == [str(n) for n in range(6)]
    assert {c["sort"] for c in cursors} == {"ASC"}
    assert [c["timestamp"] for c in cursors] == sorted(c["timestamp"] for c in cursors)

    for pages, expected in ((seen["asc_pages"], everything), (seen["desc_pages"], everything[::-1])):
        assert all(len(page) <= 2 for page in pages), pages
        assert [output for page in pages for output in page] == expected
    assert seen["window_outputs"] == ["counter 1", "counter 2"]  # from exclusive, to inclusive
    assert seen["desc_limit2"] == ["counter 4", "counter 3"]

    assert seen["dryrun_get"] == "4"
    assert seen["dryrun_get_action"] == "Got"
    assert seen["dryrun_get_error"] is None
    assert seen["dryrun_plain"] == "4"  # aoconnect's default Owner "1234"
    assert seen["dryrun_plain_target"] == "1234"
    assert seen["dryrun_inc_output"] == "counter 5"  # the dry-run ran the handler ...
    assert seen["dryrun_after"] == "4"  # ... and its state did not stick
    assert seen["counter_after"] == "4"
    assert seen["count_after_dryruns"] == 7  # only the Eval after the dry-runs was added

    kinds = out["requests_by_kind"]
    assert kinds.count("POST cu/dry-run") == 4
    results_urls = [r["url"] for r in out["requests"] if _kind(network["config"], r) == "GET cu/results"]
    assert results_urls[0].endswith(f"/results/{seen['process']}?sort=ASC&limit=100")
    assert any("from=" in url and "to=" in url for url in results_urls)


def test_monitor_a_cron_process_that_sends_to_another(network):
    out = run_scenario(network, "cron-monitor")
    seen = out["observed"]
    cron, sink = seen["cron"], seen["sink"]
    assert seen["cron_eval"] == "cron ready"
    assert _is_id(seen["monitor_id"]) and _is_id(seen["unmonitor_id"])
    assert len(seen["sink_ticks"]) >= 2
    assert set(seen["sink_ticks"]) == {cron}  # From = the cron process (pushed by the MU)
    ticks = [o for o in seen["cron_results_outputs"] if o.startswith("cron tick")]
    assert ticks[:2] == ["cron tick 1", "cron tick 2"]
    assert seen["cron_results_targets"] and set(seen["cron_results_targets"]) == {sink}
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
    assert seen["second_notes"] == [f"{note}:remember me"]
    assert seen["first_notes"] == [f"{note}:remember me"]
    assert seen["second_result_error"] is None
    assert seen["second_result"] == f"noted {note}"
    assign_urls = [r["url"] for r in out["requests"] if _kind(network["config"], r) == "POST mu/assign"]
    assert set(assign_urls) == {f"{network['config']['mu']}?process-id={second}&assign={note}"}  # retries repeat it


def test_transfer_between_two_token_processes(network):
    # TODO: load pyao/lua/blueprints/token.lua instead of the inline handlers once it lands.
    out = run_scenario(network, "token")
    seen = out["observed"]
    alpha, beta = seen["alpha"], seen["beta"]
    assert seen["alpha_load"] == seen["beta_load"] == "token ready"
    assert seen["kick_messages"] == [[alpha, "Transfer"]]
    # alpha's ledger: alpha paid 250 to beta, beta paid 100 back
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


def test_a_process_spawns_another_and_gets_spawned(network):
    out = run_scenario(network, "spawn-from-process")
    seen = out["observed"]
    parent = seen["parent"]
    assert seen["kick_output"] == "spawning"
    assert seen["kick_spawns"] == 1
    assert len(seen["children"]) == 1 and _is_id(seen["children"][0])
    assert seen["child_results"] >= 1
    assert seen["child_owner_name"] == f"{parent}|e2e-child"  # its Owner is the spawner


def test_result_right_after_spawn_is_not_a_404(network):
    """Regression: the CU once found a process only through the gateway, so a result asked for
    before the SU had uploaded the process answered 404. It now asks the SUs (as a router would)."""
    out = run_scenario(network, "result-right-after-spawn")
    rounds = out["observed"]["rounds"]
    assert rounds == [{"output": "42", "error": None}] * 40


def test_assign_right_after_message_is_accepted(network):
    """Regression: the SU once checked only the gateway for a message it had just scheduled
    itself (not yet uploaded) and refused to assign it. It now checks its own store first."""
    out = run_scenario(network, "assign-right-after-message")
    rounds = out["observed"]["rounds"]
    assert rounds == [{"assigned": True, "error": None}] * 40
