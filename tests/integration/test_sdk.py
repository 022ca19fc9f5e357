"""The Python SDK (``pyao.connect``) against a real ``pyao up``: every aoconnect call, both forms, and its errors."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import httpx
import pytest

import pyao
from pyao.data import b64url_encode
from pyao.errors import NotFound, RequestError, UnitError
from pyao.testing.network import running_network
from pyao.testing.postgres import free_ports

pytestmark = pytest.mark.slow

# well-formed ids nothing on the network has
P, A, B, M, S = (b64url_encode(bytes([n]) * 32) for n in range(1, 6))


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    with running_network(tmp_path_factory.mktemp("sdk")) as net:
        yield {
            "gateway": net.gateway,
            "su": net.su,
            "cu": net.cu,
            "mu": net.mu,
            "wallet": net.wallet,
            "module": net.module_id,
            "scheduler": net.scheduler_address(),
            "mu_address": net.mu_address(),
        }


@pytest.fixture
def sdk(network):
    with pyao.connect(
        mu_url=network["mu"], cu_url=network["cu"], gateway_url=network["gateway"], signer=network["wallet"]
    ) as connection:
        yield connection


def _spawn(sdk, network, name):
    return sdk.spawn(
        network["module"], network["scheduler"], tags=[("Name", name), ("Authority", network["mu_address"])]
    )


def _wait_on_gateway(gateway: str, item_id: str, timeout: float = 20.0) -> None:
    """The SU uploads what it schedules in batches: an item reaches the gateway a moment later."""
    query = "query($ids:[ID!]){transactions(ids:$ids){edges{node{id}}}}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = httpx.post(gateway + "/graphql", json={"query": query, "variables": {"ids": [item_id]}}).json()
        if body["data"]["transactions"]["edges"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"{item_id} never reached the gateway")


def _position(cursor):
    """A CU cursor is base64(JSON {timestamp, ordinate, cron?, sort}); the sort differs by direction."""
    decoded = json.loads(base64.b64decode(cursor))
    return decoded["timestamp"], decoded["ordinate"], decoded.get("cron")


def test_sync_sdk_spawns_messages_reads_results_and_dry_runs(sdk, network):
    pid = _spawn(sdk, network, "sdk-calc")
    evals = []
    for n in range(3):
        evals.append(sdk.message(pid, tags=[("Action", "Eval")], data=f"Counter = (Counter or 0) + 1; return {n} * 7"))
    result = sdk.result(evals[-1], pid)
    assert not result.get("Error"), result
    assert result["Output"]["data"] == "14"

    # results: paginated forwards and backwards
    first = sdk.results(pid, limit=2)
    assert len(first["edges"]) == 2 and first["pageInfo"]["hasNextPage"] is True
    rest = sdk.results(pid, from_=first["edges"][-1]["cursor"], limit=25)
    forward = [edge["cursor"] for edge in first["edges"] + rest["edges"]]
    assert len(forward) == len(set(forward)) >= 4  # the spawn's boot evaluation and three Evals
    assert rest["pageInfo"]["hasNextPage"] is False
    backward = sdk.results(pid, sort="DESC", limit=2)
    assert backward["edges"][0]["node"]["Output"]["data"] == "14"
    older = sdk.results(pid, from_=backward["edges"][-1]["cursor"], sort="DESC", limit=25)
    assert [_position(e["cursor"]) for e in backward["edges"] + older["edges"]] == [_position(c) for c in forward[::-1]]

    # dryrun answers with the current state and changes nothing
    owner = network["wallet"].address
    anonymous = sdk.dryrun(pid, data="return 1", tags=[("Action", "Eval")])
    assert anonymous["Output"]["data"] == "New Message From 1234: Action = Eval"  # aoconnect's Owner default
    dry = sdk.dryrun(pid, data="Counter = Counter + 100; return Counter", tags=[("Action", "Eval")], owner=owner)
    assert dry["Output"]["data"] == "103", dry
    dry_again = sdk.dryrun(pid, data="return Counter", tags={"Action": "Eval"}, owner=owner)
    assert dry_again["Output"]["data"] == "3", dry_again
    after = sdk.results(pid, sort="DESC", limit=25)
    assert len(after["edges"]) == len(forward)


def test_sync_sdk_assign_monitor_and_unmonitor(sdk, network):
    a, b = _spawn(sdk, network, "sdk-a"), _spawn(sdk, network, "sdk-b")
    note = sdk.message(a, tags=[("Action", "Note")], data="hello from a's inbox")
    assert sdk.result(note, a) is not None
    assignment = sdk.assign(b, note)
    assert pyao.data.is_id(assignment)
    check = sdk.message(b, tags=[("Action", "Eval")], data="return #Inbox > 0 and Inbox[#Inbox].Data or 'empty'")
    assert sdk.result(check, b)["Output"]["data"] == "hello from a's inbox"

    assert sdk.monitor(a) == "Monitoring process"
    assert sdk.unmonitor(a) == "Process deleted"
    with pytest.raises(NotFound):
        sdk.unmonitor(a)


def test_async_sdk_spawns_messages_and_reads_a_result(network):
    async def scenario():
        async with pyao.connect_async(
            mu_url=network["mu"], cu_url=network["cu"], gateway_url=network["gateway"], signer=network["wallet"]
        ) as sdk:
            pid = await sdk.spawn(network["module"], network["scheduler"], tags=[("Name", "sdk-async")])
            mid = await sdk.message(pid, tags=[("Action", "Eval")], data="return 'async ' .. 6 * 7")
            return await sdk.result(mid, pid)

    assert asyncio.run(scenario())["Output"]["data"] == "async 42"


def test_sync_sdk_works_inside_a_running_event_loop(sdk, network):
    async def inside():
        pid = _spawn(sdk, network, "sdk-in-loop")
        return sdk.dryrun(pid, data="return 1 + 1", tags=[("Action", "Eval")], owner=network["wallet"].address)

    assert asyncio.run(inside())["Output"]["data"] == "2"


def test_spawned_items_carry_aoconnects_tags(network):
    from pyao.client.connect import _body, _with_sdk
    from pyao.data import ao

    data, tags = _body(None, _with_sdk(ao.message_tags([("Action", "Eval")])))
    assert data == " "
    assert [(t.name, t.value) for t in tags] == [
        ("Action", "Eval"),
        ("Data-Protocol", "ao"),
        ("Variant", "ao.TN.1"),
        ("Type", "Message"),
        ("SDK", "pyao"),
        ("Content-Type", "text/plain"),
    ]


# ------------------------------------------------------------------ errors


def test_a_unit_that_is_down_raises_unit_error_naming_its_url(network):
    (closed,) = free_ports(1)
    url = f"http://127.0.0.1:{closed}"
    with pyao.connect(mu_url=url, cu_url=url, gateway_url=url, signer=network["wallet"]) as sdk:
        with pytest.raises(UnitError, match=f"compute unit at {url}"):
            sdk.result(A, B)
        with pytest.raises(UnitError, match=f"messenger unit at {url}"):
            sdk.message(B, data="hi")
        with pytest.raises(UnitError, match=f"gateway at {url}"):
            sdk.spawn(A, B)


def test_spawn_of_a_bad_module_raises_a_clear_error(sdk, network):
    with pytest.raises(NotFound, match=r"module \S+ was not found on the gateway"):
        sdk.spawn(M, network["scheduler"])
    # an existing item that is not a module: a user's message (once the SU has stored it on the gateway)
    pid = _spawn(sdk, network, "sdk-not-a-module")
    _wait_on_gateway(network["gateway"], pid)
    with pytest.raises(RequestError, match="is not an ao module"):
        sdk.spawn(pid, network["scheduler"])
    with pytest.raises(RequestError, match="module must be a 43-character"):
        sdk.spawn("nope", network["scheduler"])


def test_message_to_an_unknown_process_is_refused_by_the_mu(sdk):
    with pytest.raises((RequestError, NotFound), match="messenger unit"):
        sdk.message(P, tags=[("Action", "Eval")], data="return 1")


def test_signing_calls_need_a_signer(network):
    with pyao.connect(mu_url=network["mu"], cu_url=network["cu"], gateway_url=network["gateway"]) as sdk:
        with pytest.raises(RequestError, match="message needs a signer"):
            sdk.message(P)
        with pytest.raises(RequestError, match="monitor needs a signer"):
            sdk.monitor(P)
        # a signer per call works without one on the connection
        pid = sdk.spawn(network["module"], network["scheduler"], signer=network["wallet"])
        mid = sdk.message(pid, tags=[("Action", "Eval")], data="return 'signed'", signer=network["wallet"])
        assert sdk.result(mid, pid)["Output"]["data"] == "signed"


@pytest.fixture
def odd_unit():
    """A loopback HTTP server that answers every request with ``(status, body)`` from ``answers``."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    answers = {"status": 202, "body": b"not json"}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            self.send_response(answers["status"])
            self.send_header("content-length", str(len(answers["body"])))
            self.end_headers()
            self.wfile.write(answers["body"])

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers
    server.shutdown()
    server.server_close()


def test_a_wrongly_shaped_answer_raises_unit_error(odd_unit, network):
    url, answers = odd_unit
    with pyao.connect(mu_url=url, cu_url=url, gateway_url=url, signer=network["wallet"]) as sdk:
        with pytest.raises(UnitError, match="messenger unit answered POST / with non-JSON"):
            sdk.message(P, data="hi")
        answers["body"] = b'{"message": "Processing DataItem"}'
        with pytest.raises(UnitError, match="without an id"):
            sdk.message(P, data="hi")
        answers["status"], answers["body"] = 200, b"[1, 2]"
        with pytest.raises(UnitError, match=r"compute unit answered /results/\S+ without edges"):
            sdk.results(P)
        with pytest.raises(UnitError, match="non-object"):
            sdk.dryrun(P)
        answers["body"] = b'{"data": {"transactions": {"edges": "nope"}}}'
        with pytest.raises(UnitError, match="answered the module query badly"):
            sdk.spawn(M, S)
        answers["status"], answers["body"] = 400, b'{"error": "you asked wrongly"}'
        with pytest.raises(RequestError, match="you asked wrongly"):
            sdk.assign(P, M)
