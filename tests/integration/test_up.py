"""`pyao up` as a user runs it: one command, real ports, units talking over the wire."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from pyao.data import DataItem, ao
from pyao.testing.network import running_network
from pyao.testing.postgres import free_ports

pytestmark = pytest.mark.slow


@pytest.fixture
def network(tmp_path):
    with running_network(tmp_path) as net:
        yield {
            "gateway": net.gateway,
            "su": net.su,
            "cu": net.cu,
            "mu": net.mu,
            "wallet": net.wallet,
            "banner": net.banner,
        }


def test_up_refuses_a_busy_port_with_a_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        gateway, cu, mu = free_ports(3)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pyao.cli",
                "up",
                "--data-dir",
                str(tmp_path),
                "--wallet",
                str(tmp_path / "w.json"),
                "--gateway-port",
                str(gateway),
                "--su-port",
                str(port),
                "--cu-port",
                str(cu),
                "--mu-port",
                str(mu),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def _graphql(gateway, query, variables):
    body = httpx.post(gateway + "/graphql", json={"query": query, "variables": variables}, timeout=10).json()
    assert "errors" not in body, body
    return body["data"]["transactions"]["edges"]


def test_up_runs_gateway_and_su_that_schedule_and_store_a_process(network):
    user = network["wallet"]
    assert user.address in network["banner"]
    su_address = httpx.get(network["su"] + "/").json()["address"]
    assert su_address in network["banner"]

    module_id = DataItem.create(b"-- lua", signer=user, tags=ao.module_tags("lua")).id
    process = DataItem.create(b" ", signer=user, tags=ao.process_tags(module_id, su_address, [("Name", "up-test")]))
    answer = httpx.post(network["su"] + "/", content=process.to_bytes()).json()
    assert answer["id"] == process.id and isinstance(answer["timestamp"], int)
    message = DataItem.create(b"1 + 1", signer=user, target=process.id, tags=ao.message_tags([("Action", "Eval")]))
    assert httpx.post(network["su"] + "/", content=message.to_bytes()).json()["id"] == message.id

    page = httpx.get(f"{network['su']}/{process.id}", params={"process-id": process.id}).json()
    assert [edge["node"]["message"]["id"] for edge in page["edges"]] == [process.id, message.id]

    # The SU's bundles and its Scheduler-Location reach the gateway, and GraphQL finds them.
    query = """query ($owners: [String!], $tags: [TagFilter!]) {
      transactions(owners: $owners, tags: $tags, first: 10) { edges { node { id tags { name value } } } } }"""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = _graphql(
            network["gateway"],
            query,
            {"owners": [user.address], "tags": [{"name": "Type", "values": ["Process", "Message"]}]},
        )
        locations = _graphql(
            network["gateway"],
            query,
            {"owners": [su_address], "tags": [{"name": "Type", "values": ["Scheduler-Location"]}]},
        )
        if len(found) == 2 and locations:
            break
        time.sleep(0.25)
    assert {edge["node"]["id"] for edge in found} == {process.id, message.id}
    url_tags = [t["value"] for t in locations[0]["node"]["tags"] if t["name"] == "Url"]
    assert url_tags == [network["su"]]


def test_up_evaluates_a_process_of_the_built_in_aos_module(network):
    """Spawn on the built-in module, Eval through the SU, read the result from the CU."""
    user = network["wallet"]
    banner_module = [line.split()[2] for line in network["banner"].splitlines() if "aos module" in line]
    assert len(banner_module) == 1
    module_id = banner_module[0]
    su_address = httpx.get(network["su"] + "/").json()["address"]
    process = DataItem.create(b"aos", signer=user, tags=ao.process_tags(module_id, su_address, [("Name", "calc")]))
    assert httpx.post(network["su"] + "/", content=process.to_bytes()).status_code == 200
    message = DataItem.create(
        b"return 6 * 7", signer=user, target=process.id, tags=ao.message_tags([("Action", "Eval")])
    )
    assert httpx.post(network["su"] + "/", content=message.to_bytes()).status_code == 200

    result = httpx.get(f"{network['cu']}/result/{message.id}", params={"process-id": process.id}, timeout=30)
    assert result.status_code == 200, result.text
    body = result.json()
    assert "Error" not in body or not body["Error"], body
    assert body["Output"]["data"] == "42"


def _module_id(banner: str) -> str:
    return next(line.split()[2] for line in banner.splitlines() if "aos module" in line)


def test_up_messages_between_processes_through_the_mu(network):
    """A user talks only to the MU; process B pings process A, A replies, B receives the Pong."""
    user = network["wallet"]
    mu_address = httpx.get(network["mu"] + "/", params={"debug": "1"}).json()["address"]
    su_address = httpx.get(network["su"] + "/").json()["address"]
    module_id = _module_id(network["banner"])

    def post(item):
        answer = httpx.post(network["mu"] + "/", content=item.to_bytes(), timeout=30)
        assert answer.status_code == 202, answer.text
        assert answer.json() == {"message": "Processing DataItem", "id": item.id}
        return item

    def spawn(name):
        tags = ao.process_tags(module_id, su_address, [("Name", name)], authorities=[mu_address])
        return post(DataItem.create(b"aos", signer=user, tags=tags))

    def evaluate(process, code):
        return post(
            DataItem.create(code.encode(), signer=user, target=process.id, tags=ao.message_tags([("Action", "Eval")]))
        )

    a, b = spawn("a"), spawn("b")
    evaluate(a, "Handlers.add('ping', 'Ping', function(m) m.reply({Action = 'Pong', Data = 'pong!'}) end)")
    ping = evaluate(b, f"Send({{Target = '{a.id}', Action = 'Ping'}})")
    result = httpx.get(f"{network['cu']}/result/{ping.id}", params={"process-id": b.id}, timeout=30).json()
    assert result["Messages"][0]["Target"] == a.id

    deadline = time.monotonic() + 30
    inbox = None
    while time.monotonic() < deadline:
        check = evaluate(b, "return #Inbox > 0 and Inbox[#Inbox].Action .. ':' .. Inbox[#Inbox].Data or 'empty'")
        out = httpx.get(f"{network['cu']}/result/{check.id}", params={"process-id": b.id}, timeout=30).json()
        inbox = out["Output"]["data"]
        if inbox != "empty":
            break
        time.sleep(0.5)
    assert inbox == "Pong:pong!"


def test_up_on_a_terminal_opens_the_console_and_stops_the_network_when_it_exits(tmp_path):
    """The README's main-job command as a user meets it: one command, a prompt, the network behind it."""
    pexpect = pytest.importorskip("pexpect")
    ports = dict(zip(("gateway", "su", "cu", "mu"), free_ports(4), strict=True))
    args = ["-m", "pyao.cli", "up", "--data-dir", str(tmp_path / "data"), "--wallet", str(tmp_path / "w.json")]
    for unit, port in ports.items():
        args += [f"--{unit}-port", str(port)]
    child = pexpect.spawn(
        sys.executable, args, env={**os.environ, "TERM": "dumb"}, encoding="utf-8", timeout=60, dimensions=(40, 200)
    )
    try:
        child.expect("pyao network is up")
        child.expect(r"process ([A-Za-z0-9_-]{43}) \(default\)")
        pid = child.match.group(1)
        child.expect(r"default.*> ")
        # the network answers other clients while the console is open
        mu = f"http://127.0.0.1:{ports['mu']}"
        assert httpx.get(mu + "/", timeout=10).status_code == 200
        record = json.loads((tmp_path / "data" / "network.json").read_text())
        assert record["urls"]["mu"] == mu and record["wallet_address"]
        child.sendline("return 6 * 7")
        child.expect(r"\r\n42\r\n")
        child.expect(r"default.*> ")
        child.sendline("return ao.id")
        child.expect(pid)
        child.expect(r"default.*> ")
        child.sendline(".exit")
        child.expect("pyao network stopped")
        child.expect(pexpect.EOF, timeout=30)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before
    for port in ports.values():  # every unit let go of its port
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
