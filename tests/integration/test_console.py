"""``pyao console`` as a user drives it: a real ``pyao up``, a pseudo-terminal, typed lines."""

from __future__ import annotations

import os
import sys

import pytest

from pyao.testing.network import running_network
from pyao.testing.postgres import free_ports

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.slow

PROMPT = r"demo.*> "


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with running_network(tmp_path_factory.mktemp("console")) as net:
        yield {"gateway": net.gateway, "cu": net.cu, "mu": net.mu, "wallet": net.wallet_path, "data_dir": net.data_dir}


def _console(network, *extra, cu_url=None):
    args = [
        "-m",
        "pyao.cli",
        "console",
        *extra,
        "--data-dir",
        str(network["data_dir"]),
        "--wallet",
        str(network["wallet"]),
        "--mu-url",
        network["mu"],
        "--cu-url",
        cu_url or network["cu"],
        "--gateway-url",
        network["gateway"],
    ]
    env = {**os.environ, "TERM": "dumb"}
    return pexpect.spawn(sys.executable, args, env=env, encoding="utf-8", timeout=20, dimensions=(40, 200))


def test_console_spawns_evaluates_loads_and_shows_new_messages(network, tmp_path):
    child = _console(network, "demo")
    try:
        child.expect(r"process ([A-Za-z0-9_-]{43}) \(demo\)")
        pid = child.match.group(1)
        child.expect(PROMPT)

        child.sendline("return 6 * 7")
        child.expect(r"\r\n42\r\n")
        child.expect(PROMPT)

        # a handler, then a message to itself: its print arrives through the background poll
        child.sendline(
            'Handlers.add("ping", Handlers.utils.hasMatchingTag("Action", "Ping"), '
            'function(m) print("pong-" .. "received") end)'
        )
        child.expect(PROMPT)
        child.sendline('Send({ Target = ao.id, Action = "Ping" }); return "sent"')
        child.expect(r"\r\nsent\r\n")
        child.expect("pong-received", timeout=15)

        # a message no handler takes lands in the Inbox: announced, and the prompt shows it
        child.sendline("return #Inbox")
        child.expect(r"\r\n(\d+)\r\n")
        inbox = int(child.match.group(1))
        child.expect(PROMPT)
        child.sendline('Send({ Target = ao.id, Data = "unhandled" }); return "sent"')
        child.expect(r"\r\nsent\r\n")
        child.expect("New Message From .*Data = unhandled", timeout=15)
        child.expect(rf"Inbox:\S*{inbox + 1}\b", timeout=5)

        script = tmp_path / "setup.lua"
        script.write_text('Greeting = "hello " .. "from the file"\n')
        child.sendline(f".load {script}")
        child.expect(PROMPT)
        child.sendline("return Greeting")
        child.expect("hello from the file")
        child.expect(PROMPT)

        child.sendline("error('boom')")
        child.expect(r"Error: .*boom")
        child.expect(PROMPT)

        child.sendline(".exit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0

    # the same name again finds the same process, whose state is still there; Ctrl-D leaves
    again = _console(network, "demo")
    try:
        again.expect(rf"process {pid} \(demo\)")
        again.expect(PROMPT)
        again.sendline("return Greeting")
        again.expect("hello from the file")
        again.expect(PROMPT)
        again.sendeof()
        again.expect(pexpect.EOF)
    finally:
        again.close()
    assert again.exitstatus == 0


def test_console_with_the_compute_unit_down_says_so_in_one_line(network):
    (closed_port,) = free_ports(1)
    closed = f"http://127.0.0.1:{closed_port}"
    child = _console(network, "demo", cu_url=closed)
    try:
        output = child.read()
    finally:
        child.close()
    assert child.exitstatus == 1
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith(f"pyao console: compute unit at {closed} is unreachable"), output
    assert "Traceback" not in output
