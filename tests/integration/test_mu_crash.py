"""The MU killed (SIGKILL) mid-crank and restarted: every accepted message is delivered and evaluated once.

The MU runs as a subprocess (``python -m pyao.cli mu``) with an RSA wallet, so a
re-signed item would differ on each try: only sending the stored signed bytes
again (and the SU refusing the duplicate) keeps delivery exactly-once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import httpx
import pytest

from pyao.config import CUConfig
from pyao.cu import create_app as cu_app
from pyao.data import DataItem, ao, save_signer
from pyao.testing.postgres import free_port
from pyao.testing.servers import serve_app
from tests._cu import USER, network
from tests._mu import MU_MODULE, MuNet, tags_of, wait_for

pytestmark = pytest.mark.slow

BURST = 30
FAN = 2


def start_mu(tmp, port, gateway, cu) -> subprocess.Popen:
    env = dict(os.environ, PYAO_MU_RETRY_BASE_S="0.1", PYAO_MU_RETRY_CAP_S="1", PYAO_MU_CRON_INTERVAL_S="0.5")
    args = [sys.executable, "-m", "pyao.cli", "mu", "--port", str(port), "--db", f"sqlite:///{tmp / 'mu.db'}"]
    args += ["--gateway-url", gateway, "--cu-url", cu, "--wallet", str(tmp / "mu-wallet.json")]
    with open(tmp / "mu.log", "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def up():
        if proc.poll() is not None:
            raise AssertionError(f"the MU exited: {(tmp / 'mu.log').read_text()[-2000:]}")
        try:
            return httpx.get(url + "/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, 20, "the MU to start")
    return proc


def spawn(net, module, mu_address, name) -> str:
    tags = ao.process_tags(module, net.su_address, [("Name", name)], authorities=[USER.address, mu_address])
    item = DataItem.create(b"x", signer=USER, tags=tags, anchor=f"{name:>32}")
    assert httpx.post(net.su + "/", content=item.to_bytes(), timeout=30).status_code == 200
    net.wait_on_gateway(item.id)
    return item.id


def test_sigkill_mid_crank_loses_nothing_and_duplicates_nothing(tmp_path, rsa_wallet):
    save_signer(rsa_wallet, tmp_path / "mu-wallet.json")
    with network(tmp_path) as net:
        cu_cfg = CUConfig(
            db=f"sqlite:///{tmp_path / 'cu.db'}",
            data_dir=tmp_path / "cu",
            gateway_url=net.gateway,
            wallet=tmp_path / "cu.json",
        )
        with serve_app(cu_app(cu_cfg)) as cu:
            module = net.module(MU_MODULE)
            sender = spawn(net, module, rsa_wallet.address, "sender")
            sink = spawn(net, module, rsa_wallet.address, "sink")
            port = free_port()
            proc = start_mu(tmp_path, port, net.gateway, cu)
            mu = MuNet(net, cu, f"http://127.0.0.1:{port}", rsa_wallet.address, module)
            roots = []
            try:
                for i in range(BURST):
                    if i == BURST // 2:  # kill it while the first half is being cranked
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        pending = _pending_jobs(tmp_path)
                        proc = start_mu(tmp_path, port, net.gateway, cu)
                    roots.append(mu.send(sender, [("Action", "Fan"), ("N", str(FAN)), ("To", sink)], data=f"m{i}"))
                assert pending > 0, "the MU was killed with nothing left to do: the test proves nothing"
                wait_for(lambda: len(mu.pushed(sink, Action="Count")) >= BURST * FAN, 40, "every Count")
                mu.idle(20)
                time.sleep(0.5)  # anything duplicated late would show now
                counts = mu.pushed(sink, Action="Count")
                assert len(counts) == BURST * FAN
                assert Counter(m["data"] for m in counts) == Counter(
                    f"m{i}/{k}" for i in range(BURST) for k in range(1, FAN + 1)
                )
                assert {tags_of(m)["Pushed-For"] for m in counts} == set(roots)
                assert len({m["id"] for m in counts}) == BURST * FAN
                last = mu.result(sink, counts[-1]["id"])
                assert last["Output"]["data"].startswith(f"counted {BURST * FAN} ")  # each evaluated once
                assert mu.status()["jobs"] == {"pending": 0, "failed": 0}
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _pending_jobs(tmp) -> int:
    import sqlite3

    with sqlite3.connect(tmp / "mu.db") as conn:
        return conn.execute("SELECT COUNT(*) FROM mu_jobs WHERE state = 'pending'").fetchone()[0]
