"""The one-shot verbs (``pyao spawn|send|eval|result|results|dryrun|inbox|state|upload``) as a user
runs them: separate ``pyao`` commands against a running ``pyao up``, found through its network.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pyao.testing.network import running_network
from pyao.testing.postgres import free_ports

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with running_network(tmp_path_factory.mktemp("verbs")) as network:
        yield network


def pyao(net, *args, check=True, data_dir=None, stdin=None):
    command = [sys.executable, "-m", "pyao.cli", *args]
    command += ["--data-dir", str(data_dir or net.data_dir), "--wallet", str(net.wallet_path)]
    env = {k: v for k, v in os.environ.items() if k not in ("MU_URL", "CU_URL", "GATEWAY_URL")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, input=stdin)
    if check:
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done


def _tags(net, item_id):
    query = "query ($ids: [ID!]) { transactions(ids: $ids) { edges { node { tags { name value } } } } }"
    body = {"query": query, "variables": {"ids": [item_id]}}
    answer = httpx.post(net.gateway + "/graphql", json=body, timeout=10).json()
    return answer["data"]["transactions"]["edges"][0]["node"]["tags"]


def test_spawn_eval_send_result_results_dryrun_inbox_state(net):
    pid = pyao(net, "spawn", "alice").stdout.strip()
    bob = pyao(net, "spawn", "bob").stdout.strip()
    assert len(pid) == 43 and pid != bob
    # a Name finds the newest process of that name; eval prints the output
    assert pyao(net, "eval", "alice", "return 6 * 7").stdout == "42\n"
    assert pyao(net, "eval", pid, "-", stdin="return ao.id").stdout.strip() == pid
    pyao(
        net, "eval", "alice", 'Handlers.add("hi", "Hi", function(m) Hits = (Hits or 0) + 1; m.reply({Data = "hi"}) end)'
    )

    message = pyao(net, "send", "alice", "--action", "Hi", "--data", "x", "-t", "Color=blue").stdout.strip()
    result = json.loads(pyao(net, "result", message, "alice").stdout)
    assert [m["Data"] for m in result["Messages"]] == ["hi"]
    waited = json.loads(pyao(net, "send", pid, "-a", "Hi", "--wait").stdout)
    assert waited["result"]["Messages"][0]["Data"] == "hi" and len(waited["id"]) == 43

    page = json.loads(pyao(net, "results", "alice", "--sort", "DESC", "--limit", "2").stdout)
    assert len(page["edges"]) == 2 and page["pageInfo"]["hasNextPage"] is True
    older = json.loads(pyao(net, "results", "alice", "--sort", "DESC", "--from", page["edges"][-1]["cursor"]).stdout)
    assert older["edges"] and all(e["cursor"] not in {p["cursor"] for p in page["edges"]} for e in older["edges"])

    # a dry run evaluates without keeping anything
    dry = json.loads(pyao(net, "dryrun", "alice", "-a", "Hi").stdout)
    assert dry["Messages"][0]["Data"] == "hi"
    assert pyao(net, "eval", "alice", "return Hits").stdout == "2\n"

    # a message no handler takes lands in the Inbox
    pyao(net, "eval", "bob", f'Send({{Target = "{pid}", Action = "Note", Data = "for your inbox"}})')
    listing = ""
    for _ in range(50):
        listing = pyao(net, "inbox", "alice").stdout
        if "for your inbox" in listing:
            break
    assert f"from {bob}" in listing and "Action=Note" in listing and "for your inbox" in listing
    as_json = json.loads(pyao(net, "inbox", "alice", "--json").stdout)
    assert as_json["total"] >= 1 and as_json["messages"][-1]["From"] == bob

    out = net.data_dir / "alice.state"
    summary = json.loads(pyao(net, "state", "alice", "--out", str(out)).stdout)
    assert summary["process"] == pid and summary["bytes"] == out.stat().st_size > 0
    assert int(summary["last-ordinate"]) >= 5


def test_eval_error_exits_1_with_the_error_on_stderr(net):
    pyao(net, "spawn", "grumpy")
    done = pyao(net, "eval", "grumpy", "error('no way')", check=False)
    assert done.returncode == 1 and "no way" in done.stderr and done.stdout == ""


def test_upload_streams_a_large_file_with_a_progress_bar(net, tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    done = pyao(net, "upload", str(big), "--content-type", "application/x-test", "-t", "Kind=blob")
    item_id = done.stdout.strip()
    assert "100%" in done.stderr and "MiB" in done.stderr
    assert httpx.get(f"{net.gateway}/raw/{item_id}", timeout=30).content == big.read_bytes()
    tags = _tags(net, item_id)
    assert {"name": "Kind", "value": "blob"} in tags
    assert {"name": "Content-Type", "value": "application/x-test"} in tags
    small = tmp_path / "small.txt"
    small.write_text("tiny")
    done = pyao(net, "upload", str(small))
    assert done.stderr == ""  # no bar under 1 MiB
    raw = httpx.get(f"{net.gateway}/raw/{done.stdout.strip()}", timeout=10).content
    assert raw == b"tiny"
    missing = pyao(net, "upload", str(tmp_path / "nope"), check=False)
    assert missing.returncode == 1 and "not a readable file" in missing.stderr


def test_explicit_urls_work_without_network_json(net, tmp_path):
    urls = ["--mu-url", net.mu, "--cu-url", net.cu, "--gateway-url", net.gateway]
    elsewhere = tmp_path / "empty"
    elsewhere.mkdir()
    pid = pyao(net, "spawn", "--module", net.module_id, *urls, data_dir=elsewhere).stdout.strip()
    assert pyao(net, "eval", pid, "return 1 + 1", *urls, data_dir=elsewhere).stdout == "2\n"
    tags = {t["name"]: t["value"] for t in _tags(net, pid)}
    assert tags["Module"] == net.module_id and tags["Authority"] == net.mu_address()
    # without network.json or flags, the default ports are tried (nothing listens there in tests)


def test_a_unit_that_is_down_is_one_clear_line_and_nothing_is_sent(net):
    pid = pyao(net, "spawn", "quiet").stdout.strip()
    before = len(json.loads(pyao(net, "results", pid, "--limit", "100").stdout)["edges"])
    (dead,) = free_ports(1)
    down = f"http://127.0.0.1:{dead}"
    done = pyao(net, "eval", pid, "Sent = true", "--cu-url", down, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"pyao eval: compute unit at {down} is unreachable")
    assert len(done.stderr.strip().splitlines()) == 1
    done = pyao(net, "send", pid, "-a", "X", "--mu-url", down, check=False)
    assert done.returncode == 1 and f"messenger unit at {down} is unreachable" in done.stderr
    done = pyao(net, "results", pid, "--cu-url", down, check=False)
    assert done.returncode == 1 and f"compute unit at {down} is unreachable" in done.stderr
    done = pyao(net, "upload", str(net.wallet_path), "--gateway-url", down, check=False)
    assert done.returncode == 1 and f"gateway at {down} is unreachable" in done.stderr
    assert len(json.loads(pyao(net, "results", pid, "--limit", "100").stdout)["edges"]) == before
    assert pyao(net, "eval", pid, "return Sent == nil").stdout == "true\n"


@pytest.fixture
def recording_unit():
    """A loopback HTTP server that answers 500 to anything and records each request line: given as
    the MU and the CU, it shows whether a verb sent anything at all."""
    seen: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def _record(self):
            seen.append(f"{self.command} {self.path}")
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_DELETE = _record

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "verb",
    [
        ["send", "-a", "Hi", "-d", "x"],
        ["send", "-a", "Hi", "--wait"],
        ["eval", "return 1"],
        ["dryrun", "-a", "Hi"],
        ["inbox"],
        ["results"],
        ["result", "m" * 43],
        ["state"],
        ["monitor"],
    ],
    ids=lambda verb: "-".join(v for v in verb if len(v) < 20),
)
def test_a_name_that_matches_no_process_is_one_clear_line_and_nothing_is_sent(net, recording_unit, verb):
    unit, seen = recording_unit
    name, *rest = verb
    where = ["--mu-url", unit, "--cu-url", unit, "--gateway-url", net.gateway]
    # the PROCESS argument comes after the message id for `result`
    args = [name, *rest, "no-such-process", *where] if name == "result" else [name, "no-such-process", *rest, *where]
    done = pyao(net, *args, check=False)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"pyao {name}: 'no-such-process' is neither a process id nor the Name of a process")
    assert seen == []  # neither the MU nor the CU was asked anything


def test_a_name_of_another_wallets_process_is_not_found(net, tmp_path):
    pyao(net, "spawn", "theirs")
    other = tmp_path / "other-wallet.json"
    command = [sys.executable, "-m", "pyao.cli", "send", "theirs", "-a", "Hi", "--data-dir", str(net.data_dir)]
    done = subprocess.run([*command, "--wallet", str(other)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "'theirs' is neither a process id nor the Name" in done.stderr
