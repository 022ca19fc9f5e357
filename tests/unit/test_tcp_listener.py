"""Units listen on sockets made by ``pyao._http.tcp_listener``: the connections they accept must have
Nagle's algorithm off, or every kept-alive request waits out the client's delayed ACK (~40 ms)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pyao._http import tcp_listener


async def _nodelay_of_accepted(listener: socket.socket) -> int:
    listener.listen()
    seen: list[int] = []

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=listener)  # as uvicorn serves ``sockets=``
    async with server:
        _, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        await writer.drain()
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        writer.close()
    return seen[0]


def test_connections_accepted_by_a_unit_listener_have_nagle_off():
    assert asyncio.run(_nodelay_of_accepted(tcp_listener("127.0.0.1", 0))) != 0


def test_on_uvloop_too_as_pyao_up_serves():
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(_nodelay_of_accepted(tcp_listener("127.0.0.1", 0))) != 0


def test_a_listener_made_without_naming_tcp_would_leave_nagle_on():
    """Why ``tcp_listener`` names the protocol: asyncio skips TCP_NODELAY for proto 0."""
    plain = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    plain.bind(("127.0.0.1", 0))
    assert asyncio.run(_nodelay_of_accepted(plain)) == 0


def test_a_taken_port_is_an_os_error():
    first = tcp_listener("127.0.0.1", 0)
    first.listen()
    with pytest.raises(OSError):
        tcp_listener("127.0.0.1", first.getsockname()[1])
    first.close()


def test_units_are_served_without_the_proxy_headers_middleware():
    """No unit reads the client's address, so uvicorn does not wrap every request in its
    proxy-headers middleware (which rewrites that address from X-Forwarded-For)."""
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    from pyao._http import uvicorn_config

    async def app(scope, receive, send):  # pragma: no cover (never called)
        raise AssertionError

    config = uvicorn_config(app, host="127.0.0.1", port=0)
    config.load()
    assert not isinstance(config.loaded_app, ProxyHeadersMiddleware)
    assert (config.log_level, config.access_log) == ("warning", False)
