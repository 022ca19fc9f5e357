"""The whole network as subprocesses on free loopback ports, for tests that drive it.

::

    with running_network(tmp_path, env={"PYAO_MU_CRON_INTERVAL_S": "1"}) as net:
        httpx.get(net.su + "/")

    with separate_units(tmp_path, dbs={"gateway": dsn1, "su": dsn2, "cu": dsn3, "mu": dsn4}) as net:
        ...                                   # the same Network, four OS processes

``running_network`` is one ``pyao up``: its output goes to a log file (a full pipe
could stall it); entering waits for the ready banner (RuntimeError with the log if
it does not come); leaving sends SIGINT and raises RuntimeError unless it exits 0.

``separate_units`` runs ``pyao gateway``, ``pyao su``, ``pyao cu`` and ``pyao mu``
as four processes (each its own log and, with ``dbs``, its own database URL), as a
network spread over hosts would (each waited for in turn; the SU until it prints that it is
ready, i.e. its Scheduler-Location is queryable); then it publishes the built-in aos module on the
gateway as ``pyao up`` does. Leaving stops each with SIGINT (SIGKILL after 20 s).
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


@contextlib.contextmanager
def separate_units(
    root: Path,
    *,
    dbs: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    cron_interval_s: float = 1.0,
    block_seconds: float = 0.5,
    timeout: float = 30.0,
) -> Iterator[Network]:
    ports = dict(zip(UNITS, free_ports(len(UNITS)), strict=True))
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    wallet, data_dir = root / "wallet.json", root / "data"
    extra: dict[str, list[str]] = {
        "gateway": ["--block-seconds", str(block_seconds)],
        "su": ["--gateway-url", urls["gateway"], "--wallet", str(data_dir / "su-wallet.json")],
        "cu": ["--gateway-url", urls["gateway"], "--wallet", str(data_dir / "cu-wallet.json")],
        "mu": [
            "--gateway-url",
            urls["gateway"],
            "--cu-url",
            urls["cu"],
            "--wallet",
            str(data_dir / "mu-wallet.json"),
            "--cron-interval",
            str(cron_interval_s),
        ],
    }
    procs: list[tuple[str, subprocess.Popen, Path]] = []
    try:
        for unit in UNITS:  # in order: the SU and CU read the gateway when they start
            unit_dir = data_dir / unit
            unit_dir.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, "-m", "pyao.cli", unit, "--port", str(ports[unit]), "--data-dir", str(unit_dir)]
            if dbs and unit in dbs:
                command += ["--db", dbs[unit]]
            log_path = root / f"{unit}.log"
            with open(log_path, "w") as log:
                proc = subprocess.Popen(
                    command + extra[unit], stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
                )
            procs.append((unit, proc, log_path))
            url = urls[unit] + ("/info" if unit == "gateway" else "/")
            wait_until_answering(url, proc, timeout, unit=unit, log_path=log_path)
            if unit == "su":  # listening is not enough: the MU finds it by its Scheduler-Location
                _wait_for_line("pyao su ready at ", proc, log_path, timeout)
        module_id = _publish_aos_module(urls["gateway"], wallet, data_dir)
        banner = f"separate units\n  aos module       {module_id}\n"
        yield Network(**urls, wallet_path=wallet, data_dir=data_dir, log_path=root / "mu.log", banner=banner)
    finally:
        failures = []
        for unit, proc, log_path in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                code = proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = "killed after 20 s"
            if code not in (0, -signal.SIGINT):
                failures.append(f"pyao {unit} exited {code}:\n{log_path.read_text()[-2000:]}")
    if failures:
        raise RuntimeError("\n".join(failures))


def wait_until_answering(
    url: str, proc: subprocess.Popen, timeout: float = 30.0, *, unit: str = "unit", log_path: Path | None = None
) -> None:
    """Poll ``url`` until it answers 200; RuntimeError (with the tail of ``log_path``, if
    given) when ``proc`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    why = f"exited {proc.returncode}" if proc.poll() is not None else f"did not answer {url} in {timeout} s"
    log = ":\n" + log_path.read_text()[-4000:] if log_path is not None and log_path.exists() else ""
    raise RuntimeError(f"pyao {unit} did not start ({why}){log}")


def _wait_for_line(text: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if text in log_path.read_text():
            return
        time.sleep(0.05)
    raise RuntimeError(f"no {text!r} line in {log_path.name}:\n" + log_path.read_text()[-4000:])


def _publish_aos_module(gateway_url: str, wallet_path: Path, data_dir: Path) -> str:
    import asyncio

    from pyao.cli._up import ensure_aos_module
    from pyao.client import GatewayClient

    async def publish() -> str:
        async with GatewayClient(gateway_url) as gateway:
            return await ensure_aos_module(gateway, Wallet.load_or_create(wallet_path), data_dir)

    return asyncio.run(publish())


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
