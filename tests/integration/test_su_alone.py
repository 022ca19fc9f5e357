"""``pyao su`` run alone (not ``pyao up``) says it is ready only once its Scheduler-Location is
queryable on the gateway, so a client that spawns the moment it reads that line is not refused.

The network is ``pyao gateway``, ``pyao mu`` and ``pyao su`` as OS processes. The SU talks to
the gateway through a loopback proxy that holds every upload (a POST other than GraphQL) for
``UPLOAD_DELAY_S``: its Scheduler-Location then lands well after the SU listens, so a readiness
line printed when it merely listens would be followed by a refused spawn (404 from the MU).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from pyao.data import DataItem, Wallet, ao
from pyao.testing.network import wait_until_answering
from pyao.testing.postgres import free_ports

pytestmark = pytest.mark.slow

UPLOAD_DELAY_S = 1.5
READY = "pyao su ready at "


def _start(unit: str, port: int, root: Path, *extra: str, stdout=None) -> subprocess.Popen:
    data_dir = root / unit
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pyao.cli", unit, "--port", str(port), "--data-dir", str(data_dir), *extra]
    log = stdout if stdout is not None else open(root / f"{unit}.log", "w")  # noqa: SIM115 (the child keeps it)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT if stdout is None else None, text=True)


class SlowUploadProxy:
    """Forwards every request to ``upstream``; holds each upload for ``UPLOAD_DELAY_S`` first and
    records when it was passed on."""

    def __init__(self, upstream: str) -> None:
        self.uploads_forwarded: list[float] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upload = self.command == "POST" and not self.path.startswith("/graphql")
                if upload:
                    time.sleep(UPLOAD_DELAY_S)
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                answer = httpx.request(self.command, upstream + self.path, content=body, headers=headers, timeout=30)
                if upload:
                    proxy.uploads_forwarded.append(time.monotonic())
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "application/octet-stream"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = _forward

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_ready_line(proc: subprocess.Popen, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(READY):
                return line
        assert proc.poll() is None, f"pyao su exited {proc.returncode}"
    raise AssertionError(f"pyao su printed no {READY!r} line in {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_pyao_su_alone_is_ready_only_once_a_spawn_on_it_is_accepted(tmp_path):
    gateway_port, mu_port, su_port, dead_cu_port = free_ports(4)
    gateway, mu, su = (f"http://127.0.0.1:{port}" for port in (gateway_port, mu_port, su_port))
    procs: list[subprocess.Popen] = []
    proxy = None
    try:
        procs.append(_start("gateway", gateway_port, tmp_path, "--block-seconds", "0.5"))
        wait_until_answering(gateway + "/info", procs[-1], unit="gateway", log_path=tmp_path / "gateway.log")
        procs.append(
            _start("mu", mu_port, tmp_path, "--gateway-url", gateway, "--cu-url", f"http://127.0.0.1:{dead_cu_port}")
        )
        wait_until_answering(mu + "/", procs[-1], unit="mu", log_path=tmp_path / "mu.log")
        proxy = SlowUploadProxy(gateway)
        su_proc = _start(
            "su",
            su_port,
            tmp_path,
            "--gateway-url",
            proxy.url,
            "--wallet",
            str(tmp_path / "su-wallet.json"),
            stdout=subprocess.PIPE,
        )
        procs.append(su_proc)

        line = _read_ready_line(su_proc)
        ready_at = time.monotonic()
        address = httpx.get(su + "/", timeout=10).json()["address"]
        assert line.split() == ["pyao", "su", "ready", "at", su, "address", address]
        user = Wallet.load_or_create(tmp_path / "user.json")
        process = DataItem.create(b"", signer=user, tags=ao.process_tags("m" * 43, address, [("Name", "early")]))
        answer = httpx.post(mu + "/", content=process.to_bytes(), timeout=30)
        assert answer.status_code == 202, answer.text
        assert answer.json()["id"] == process.id
        schedule = httpx.get(f"{su}/{process.id}", params={"process-id": process.id}, timeout=10)
        assert schedule.status_code == 200 and process.id in schedule.text
        # and the slow proxy did hold the Scheduler-Location back until before the SU said it was ready
        assert proxy.uploads_forwarded and proxy.uploads_forwarded[0] <= ready_at
    finally:
        if proxy is not None:
            proxy.close()
        for proc in reversed(procs):
            _stop(proc)


def test_pyao_su_alone_waits_for_the_location_and_warns_while_the_gateway_is_down(tmp_path):
    (dead_gateway, su_port) = free_ports(2)
    env = {**os.environ, "PYAO_SU_LOCATE_WARN_S": "0.5"}
    command = [sys.executable, "-m", "pyao.cli", "su", "--port", str(su_port), "--data-dir", str(tmp_path)]
    command += ["--gateway-url", f"http://127.0.0.1:{dead_gateway}"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_until_answering(f"http://127.0.0.1:{su_port}/", proc, unit="su")
        time.sleep(2.0)
    finally:
        _stop(proc)
    out, err = proc.communicate()
    assert READY not in out  # it listens, but nobody can locate it: not ready
    assert "not announcing readiness yet" in err and f"127.0.0.1:{dead_gateway}" in err
    assert proc.returncode == 0 and "Traceback" not in err  # SIGINT is how a unit is stopped
