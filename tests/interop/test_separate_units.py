"""The network as four OS processes (``pyao gateway``, ``pyao su``, ``pyao cu``, ``pyao mu``), each on
its own PostgreSQL database in one test server, as a deployment over several hosts would run it.
The official aoconnect scenarios and the Python SDK's run against it unchanged."""

from __future__ import annotations

import uuid

import httpx
import pytest

import pyao
from pyao.testing.network import separate_units
from tests._scenarios import (  # noqa: F401  (pytest collects the imported tests)
    ScenarioNet,
    test_sdk_a_process_spawns_another_and_gets_spawned,
    test_sdk_assign_an_existing_message_to_another_process,
    test_sdk_monitor_a_cron_process_that_sends_to_another,
    test_sdk_results_pages_both_ways_and_dryrun_changes_nothing,
    test_sdk_spawn_message_eval_and_result,
    test_sdk_transfer_between_two_token_processes,
)
from tests.interop.test_aoconnect_e2e import (  # noqa: F401
    test_a_process_spawns_another_and_gets_spawned,
    test_assign_an_existing_message_to_another_process,
    test_monitor_a_cron_process_that_sends_to_another,
    test_results_pages_both_ways_and_dryrun_changes_nothing,
    test_spawn_message_eval_and_result,
    test_transfer_between_two_token_processes,
)

pytestmark = [pytest.mark.interop, pytest.mark.slow]


@pytest.fixture(scope="module")
def units(postgres_server, tmp_path_factory):
    import psycopg

    base = postgres_server.dsn.rsplit("/", 1)[0]
    dbs = {}
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        for unit in ("gateway", "su", "cu", "mu"):
            name = f"{unit}_{uuid.uuid4().hex[:10]}"
            conn.execute(f"CREATE DATABASE {name}")
            dbs[unit] = f"{base}/{name}"
    with separate_units(tmp_path_factory.mktemp("separate-units"), dbs=dbs) as net:
        yield net, dbs


@pytest.fixture(scope="module")
def network(units, node_harness):
    """What ``test_aoconnect_e2e``'s scenarios read."""
    net, _ = units
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
    return {"config": config, "js": node_harness, "log": net.log_path}


@pytest.fixture(scope="module")
def scenario_net(units):
    net, _ = units
    ao = pyao.connect(net.mu, net.cu, net.gateway, signer=net.wallet)
    try:
        yield ScenarioNet(ao, net.module_id, net.scheduler_address(), net.mu_address(), net.wallet.address)
    finally:
        ao.close()


def test_each_unit_keeps_its_data_in_its_own_postgresql_database(units, scenario_net, postgres_server):
    import psycopg

    net, dbs = units
    pid = scenario_net.spawn("where-is-it")
    scenario_net.evaluate(pid, "return 1")
    assert httpx.get(f"{net.su}/processes/{pid}", timeout=10).status_code == 200
    table_sets = {}
    for unit, dsn in dbs.items():
        with psycopg.connect(dsn) as conn:
            tables = [row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
            rows = sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables)
        assert tables, f"the {unit} created no tables in its database"
        if unit != "mu":  # the MU's finished jobs may be gone
            assert rows, f"the {unit}'s database is empty"
        table_sets[unit] = set(tables)
    assert len({frozenset(t) for t in table_sets.values()}) == 4  # four different schemas, one per unit
