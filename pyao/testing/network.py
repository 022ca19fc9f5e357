"""``pyao up`` as a subprocess on free loopback ports, for tests that drive the whole network.

::

    with running_network(tmp_path, env={"PYAO_MU_CRON_INTERVAL_S": "1"}) as net:
        httpx.get(net.su + "/")

Its output goes to a log file (a full pipe could stall it). Entering waits for the
ready banner (RuntimeError with the log if it does not come); leaving sends SIGINT
and raises RuntimeError unless ``pyao up`` exits 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from pyao.data import Wallet
from pyao.testing.postgres import free_ports

UNITS = ("gateway", "su", "cu", "mu")


@dataclass(frozen=True)
class Network:
    gateway: str
    su: str
    cu: str
    mu: str
    wallet_path: Path
    data_dir: Path
    log_path: Path
    banner: str

    @property
    def module_id(self) -> str:
        """The built-in aos module's id, from the banner's ``aos module <id>`` line."""
        return next(line.split()[2] for line in self.banner.splitlines() if "aos module" in line)

    @property
    def wallet(self) -> Wallet:
        return Wallet.load(self.wallet_path)

    def scheduler_address(self) -> str:
        return httpx.get(self.su + "/", timeout=10).json()["address"]

    def mu_address(self) -> str:
        return httpx.get(self.mu + "/", params={"debug": "1"}, timeout=10).json()["address"]


@contextlib.contextmanager
def running_network(
    root: Path, *, env: dict[str, str] | None = None, block_seconds: float = 0.5, timeout: float = 30.0
) -> Iterator[Network]:
    ports = dict(zip(UNITS, free_ports(len(UNITS)), strict=True))
    wallet, data_dir, log_path = root / "wallet.json", root / "data", root / "up.log"
    command = [sys.executable, "-m", "pyao.cli", "up", "--no-console", "--data-dir", str(data_dir)]
    command += ["--wallet", str(wallet)]
    for name, port in ports.items():
        command += [f"--{name}-port", str(port)]
    command += ["--block-seconds", str(block_seconds)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, text=True
        )
    try:
        banner = _wait_for_banner(proc, log_path, timeout)
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        yield Network(**urls, wallet_path=wallet, data_dir=data_dir, log_path=log_path, banner=banner)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    if code != 0:
        raise RuntimeError(f"pyao up exited {code}:\n{log_path.read_text()[-4000:]}")


def _wait_for_banner(proc: subprocess.Popen, log_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if "Press Ctrl-C" in text and "pyao network is up" in text:
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("pyao up did not start:\n" + log_path.read_text()[-4000:])
