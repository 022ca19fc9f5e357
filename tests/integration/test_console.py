"""``pyao console`` as a user drives it: a real ``pyao up``, a pseudo-terminal, typed lines."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

from pyao.testing.postgres import free_ports

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.slow

PROMPT = r"demo.*> "


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("console")
    gateway_port, su_port, cu_port, mu_port = free_ports(4)
    wallet = tmp_path / "wallet.json"
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pyao.cli",
            "up",
            "--data-dir",
            str(data_dir),
            "--wallet",
            str(wallet),
            "--gateway-port",
            str(gateway_port),
            "--su-port",
            str(su_port),
            "--cu-port",
            str(cu_port),
            "--mu-port",
            str(mu_port),
            "--block-seconds",
            "0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = _read_banner(proc, timeout=30)
    assert any("pyao network is up" in line for line in lines), "".join(lines)
    yield {
        "gateway": f"http://127.0.0.1:{gateway_port}",
        "cu": f"http://127.0.0.1:{cu_port}",
        "mu": f"http://127.0.0.1:{mu_port}",
        "wallet": wallet,
        "data_dir": data_dir,
    }
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=20) == 0


def _read_banner(proc, timeout):
    """The lines ``pyao up`` prints until it is ready; fails (never hangs) if it is not ready in time."""
    pending: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [pending.put(line) for line in proc.stdout], daemon=True).start()
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = pending.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            return lines
    proc.kill()
    pytest.fail("pyao up did not start: " + "".join(lines))


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
