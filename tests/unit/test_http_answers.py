"""``send_json`` on uvicorn's HTTP/1.1 server: an answer's head and body go out in one write (one
TCP segment, one wake-up of the client), the bytes unchanged; kept-alive and closing connections."""

from __future__ import annotations

import asyncio

import uvicorn

from pyao._http import send_json, tcp_listener, uvicorn_config

BODY = b'{"ok":true}'


class _Recording:
    """The connection's real transport, its writes noted (each still goes out)."""

    def __init__(self, transport, writes: list[bytes]) -> None:
        self.transport, self.writes = transport, writes

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))
        self.transport.write(data)

    def __getattr__(self, name):
        return getattr(self.transport, name)


def _answers(requests: list[bytes]) -> tuple[list[bytes], bytes]:
    """Serve each request (in order on one connection) with ``send_json``; the transport writes
    each answer made, and the bytes the client read."""
    writes: list[bytes] = []

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        cycle = send.__self__
        cycle.transport = _Recording(cycle.transport, writes)
        await send_json(send, 202, BODY)

    async def main() -> bytes:
        listener = tcp_listener("127.0.0.1", 0)
        server = uvicorn.Server(uvicorn_config(app, lifespan="off"))
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        got = b""
        for request in requests:
            writer.write(request)
            end = b"\r\n\r\n" if request.startswith(b"HEAD") else BODY
            while not got.endswith(end):
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                assert chunk, "the server closed early"
                got += chunk
            if b"close" in request:
                assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closes
            got += b"|"
        writer.close()
        server.should_exit = True
        await serving
        return got

    return writes, asyncio.run(main())


def test_a_json_answer_is_one_write_with_its_head():
    get = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    writes, got = _answers([get, get])
    head = b"HTTP/1.1 202 Accepted\r\n"
    assert len(writes) == 2 and all(w.startswith(head) and w.endswith(b"\r\n\r\n" + BODY) for w in writes)
    assert got == (writes[0] + b"|") * 2
    for header in (b"content-length: 11\r\n", b"content-type: application/json\r\n"):
        assert header in writes[0]


def test_a_closing_connection_still_gets_the_whole_answer():
    writes, got = _answers([b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"])
    assert len(writes) == 1 and got == writes[0] + b"|" and writes[0].endswith(BODY)
    assert b"connection: close\r\n" in writes[0]


def test_a_head_request_gets_the_head_alone():
    writes, _ = _answers([b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n", b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"])
    assert len(writes) == 2 and writes[0].endswith(b"\r\n\r\n") and writes[1].endswith(BODY)
