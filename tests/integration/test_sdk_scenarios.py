"""aoconnect's six end-to-end scenarios, driven by the Python SDK against ``pyao up``."""

from __future__ import annotations

import pytest

import pyao
from pyao.testing.network import running_network
from tests._scenarios import (  # noqa: F401  (pytest collects the imported tests)
    ScenarioNet,
    test_sdk_a_process_spawns_another_and_gets_spawned,
    test_sdk_assign_an_existing_message_to_another_process,
    test_sdk_monitor_a_cron_process_that_sends_to_another,
    test_sdk_results_pages_both_ways_and_dryrun_changes_nothing,
    test_sdk_spawn_message_eval_and_result,
    test_sdk_transfer_between_two_token_processes,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario_net(tmp_path_factory):
    root = tmp_path_factory.mktemp("sdk-scenarios")
    with running_network(root, env={"PYAO_MU_CRON_INTERVAL_S": "1"}) as net:
        ao = pyao.connect(net.mu, net.cu, net.gateway, signer=net.wallet)
        try:
            yield ScenarioNet(ao, net.module_id, net.scheduler_address(), net.mu_address(), net.wallet.address)
        finally:
            ao.close()
