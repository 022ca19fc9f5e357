"""A WASM process's reply reaches an aos process through the MU, paired by ``X-Reference``.

On ``pyao up``: an aos (Lua) process sends ``Say`` to a process of the kit's ``echo`` module with
``Send(...).onReply(...)``. The echo's reply must carry an ``Anchor`` (the MU pushes no outbox
message without one, as the official MU does) and ``X-Reference`` = the Send's ``Reference`` (what
``onReply`` waits for); then the Lua process's callback runs and records what came back.
"""

from __future__ import annotations

import httpx
import pytest

import pyao
from pyao.data import DataItem, ao
from pyao.testing.network import running_network
from tests._scenarios import output, wait_for
from tests.unit._wasm import W32, kit_bytes

pytestmark = pytest.mark.slow


def test_an_echo_reply_is_pushed_and_reaches_on_reply(tmp_path):
    with running_network(tmp_path) as net:
        module = DataItem.create(kit_bytes("echo", W32), signer=net.wallet, tags=ao.module_tags(W32))
        assert httpx.post(net.gateway + "/tx", content=module.to_bytes(), timeout=30).status_code == 200
        scheduler, mu = net.scheduler_address(), net.mu_address()
        with pyao.connect(net.mu, net.cu, net.gateway, signer=net.wallet) as client:
            echo = client.spawn(module.id, scheduler, tags=[("Name", "echo")])
            asker = client.spawn(net.module_id, scheduler, tags=[("Name", "asker"), ("Authority", mu)])
            code = (
                f'Send({{ Target = "{echo}", Action = "Say", Data = "ping" }}).onReply(function(m)\n'
                '  Echoed = m.Data .. " from " .. m.From .. " anchor " .. m.Anchor\n'
                "end)\n"
                'return "sent"'
            )
            sent = client.message(asker, tags=[("Action", "Eval")], data=code)
            assert output(client.result(sent, asker)) == "sent"

            def echoed():
                answer = client.dryrun(asker, tags=[("Action", "Eval")], data="return Echoed", owner=net.wallet.address)
                return output(answer)

            # reference 1 was the echo's reply to its own Process message (to the wallet, stored on the gateway)
            assert wait_for(echoed, lambda text: bool(text)) == f"ping from {echo} anchor {'0' * 31}2"
            # the echo process saw the Say from the asker (cranked by the MU, From-Process = asker)
            said = client.results(echo, sort="DESC", limit=1)["edges"][0]["node"]
            assert output(said) == "ping" and said["Messages"][0]["Target"] == asker
