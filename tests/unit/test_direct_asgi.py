"""``UnitClient(app=...)`` (a direct ASGI call) answers exactly as the same client over
``httpx.ASGITransport`` does: paths, query strings, bodies, headers, HEAD, errors."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from pyao.client._base import UnitClient
from pyao.errors import NotFound, RequestError, UnitError


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "params": sorted(request.query_params.multi_items()),
            "body": body.decode("latin-1"),
            "type": request.headers.get("content-type"),
            "length": request.headers.get("content-length"),
            "host": request.headers.get("host"),
        },
        headers={"x-extra": "1"},
    )


async def missing(request: Request) -> Response:
    return JSONResponse({"error": "no such thing"}, status_code=404)


async def refused(request: Request) -> Response:
    return JSONResponse({"error": "bad input"}, status_code=400)


async def broken(request: Request) -> Response:
    return PlainTextResponse("oops", status_code=503)


async def slow(request: Request) -> Response:
    await asyncio.sleep(5)
    return Response(b"late")


async def latin(request: Request) -> Response:
    return Response("café".encode("latin-1"), media_type="text/plain; charset=latin-1")


async def boom(request: Request) -> Response:
    raise RuntimeError("the app failed")


APP = Starlette(
    routes=[
        Route("/missing", missing),
        Route("/refused", refused, methods=["POST"]),
        Route("/broken", broken),
        Route("/boom", boom),
        Route("/latin", latin),
        Route("/slow", slow),
        Route("/{rest:path}", echo, methods=["GET", "POST", "HEAD", "DELETE"]),
    ]
)


async def chunks():
    yield b"ab"
    yield b"cd"


CALLS = [
    ("GET", "/a/b", {}),
    ("GET", "/result/xyz", {"params": {"process-id": "p-1", "to": "a b&c"}}),
    ("GET", "/a?x=1", {"params": {"y": "2"}}),
    ("POST", "/", {"content": b"\x00\x01raw", "headers": {"content-type": "application/octet-stream"}}),
    ("POST", "/graphql", {"json": {"query": "{ x }", "variables": {"a": [1, "é"]}}}),
    ("DELETE", "/monitor/abc", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), CALLS)
def test_same_answers_as_asgi_transport(method, path, kwargs):
    async def both():
        over = UnitClient("http://127.0.0.1:9999", transport=httpx.ASGITransport(app=APP))
        direct = UnitClient("http://127.0.0.1:9999", app=APP)
        try:
            a = await over.request(method, path, **kwargs)
            b = await direct.request(method, path, **kwargs)
        finally:
            await over.close()
            await direct.close()
        return a, b

    a, b = asyncio.run(both())
    assert (a.status_code, a.json(), a.headers["x-extra"]) == (b.status_code, b.json(), b.headers["x-extra"])
    assert (a.content, a.text, sorted(a.headers.items())) == (b.content, b.text, sorted(b.headers.items()))


def test_streamed_body_head_and_errors():
    async def run():
        client = UnitClient("http://127.0.0.1:9999", app=APP)
        try:
            streamed = await client.json("POST", "/up", content=chunks(), headers={"content-length": "4"})
            assert streamed["body"] == "abcd" and streamed["length"] == "4"
            head = await client.request("HEAD", "/x")
            assert head.status_code == 200 and head.content == b""
            latin = await client.request("GET", "/latin")
            assert latin.text == "café" and latin.content == "café".encode("latin-1")
            with pytest.raises(NotFound, match="no such thing"):
                await client.request("GET", "/missing")
            with pytest.raises(RequestError, match="bad input"):
                await client.request("POST", "/refused")
            with pytest.raises(UnitError, match="503"):
                await client.request("GET", "/broken")
            with pytest.raises(RuntimeError, match="the app failed"):
                await client.request("GET", "/boom")
        finally:
            await client.close()

    asyncio.run(run())


def test_an_app_slower_than_the_timeout_is_a_unit_error_and_the_caller_goes_on():
    """The timeout ends the app's call (it runs in the caller's own task) as an unreachable unit;
    the caller's task is not cancelled by it and can make its next request."""

    async def run():
        client = UnitClient("http://127.0.0.1:9999", app=APP, timeout=0.2)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(UnitError, match="unreachable"):
                await client.request("GET", "/slow")
            assert asyncio.get_running_loop().time() - started < 2.0
            assert (await client.json("GET", "/after"))["path"] == "/after"
        finally:
            await client.close()

    asyncio.run(run())


@pytest.mark.parametrize(
    "params",
    [
        {"process-id": "p" * 43, "no-busy": "1"},
        {"process-id": "Ab-_9" * 8 + "xyz", "assign": "z" * 43, "base-layer": ""},
        {"to": "a b&c", "from": "x"},
        {"k": "a/b"},
        {"k": "é", "n": 5},
        {"k": ["a", "b"]},
        {"~.-_": "~.-_"},
    ],
)
def test_query_strings_are_urlencodes(params):
    from urllib.parse import urlencode

    from pyao.client._base import _query

    assert _query(params) == urlencode(params, doseq=True)
