"""The shared base of unit clients: one httpx.AsyncClient (or a direct in-process call), typed errors."""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import httpx

from pyao.errors import NotFound, RequestError, UnitError


class UnitClient:
    """Base for clients of one unit at ``url``.

    ``transport`` lets ``pyao up`` wire units in one process (``httpx.ASGITransport``)
    and tests use ``httpx.MockTransport``; by default it is real HTTP. ``app`` (an ASGI
    app in this process) calls it directly, without httpx's request building: ``pyao up``
    uses it on the per-message paths (MU → SU, MU → CU, CU → SU), where that building
    cost more than the called unit's own work.
    """

    unit_name = "unit"

    def __init__(
        self,
        url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
        app: Any = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, transport=transport, timeout=timeout)
        self._direct = DirectAsgi(app, self.url, timeout) if app is not None else None

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | DirectResponse:
        """Send a request; map transport failures and 4xx/5xx answers to typed errors. The answer
        is an ``httpx.Response``, or a ``DirectResponse`` (the same reading face) for ``app=``."""
        try:
            if self._direct is not None:
                response = await self._direct.request(method, path, **kwargs)
            else:
                response = await self._http.request(method, path, **kwargs)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise UnitError(f"{self.unit_name} at {self.url} is unreachable: {exc}") from exc
        if response.status_code == 404:
            raise NotFound(f"{self.unit_name}: {method} {path}: {_error_text(response)}")
        if 400 <= response.status_code < 500:
            raise RequestError(f"{self.unit_name} refused {method} {path}: {_error_text(response)}")
        if response.status_code >= 500:
            raise UnitError(
                f"{self.unit_name} failed {method} {path}: {response.status_code} {_error_text(response)}",
                response.status_code,
            )
        return response

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise UnitError(f"{self.unit_name} answered {method} {path} with non-JSON") from exc


def _error_text(response: httpx.Response | DirectResponse) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except ValueError:
        pass
    return response.text[:200]


class DirectResponse:
    """An in-process answer, read as an ``httpx.Response`` is (``status_code``, ``content``,
    ``text``, ``json()``, ``headers``), without building one: on ``pyao up``'s per-message
    calls httpx's response model cost more than the JSON in it."""

    __slots__ = ("_headers", "_raw_headers", "content", "status_code")

    def __init__(self, status_code: int, raw_headers: list[tuple[bytes, bytes]], content: bytes) -> None:
        self.status_code = status_code
        self.content = content
        self._raw_headers = raw_headers
        self._headers: httpx.Headers | None = None

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self._raw_headers)
        return self._headers

    @property
    def text(self) -> str:
        """The body decoded with its ``charset`` (UTF-8 when none or unknown), as httpx does."""
        charset = self.headers.get("content-type", "").partition("charset=")[2].split(";")[0].strip(' "')
        try:
            return self.content.decode(charset or "utf-8", "replace")
        except LookupError:
            return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)


#: text that URL quoting leaves as it is (ids, paths of ids): the per-message calls skip the quoting
_PLAIN = re.compile(r"[A-Za-z0-9_.~/-]*")


def _query(params: dict[str, Any]) -> str:
    """``urlencode(params, doseq=True)``; plain names and values (ids) are joined without it."""
    if all(
        isinstance(k, str) and isinstance(v, str) and _PLAIN.fullmatch(k) and _PLAIN.fullmatch(v) and "/" not in k + v
        for k, v in params.items()
    ):
        return "&".join(f"{k}={v}" for k, v in params.items())
    return urlencode(params, doseq=True)


class DirectAsgi:
    """One HTTP request as an ASGI call to an app in this process: the scope, the body and the
    response as ``httpx.ASGITransport`` would make them, less httpx's URL and model building.
    An exception the app raises propagates (as with ``ASGITransport``)."""

    def __init__(self, app: Any, url: str, timeout: float) -> None:
        self.app = app
        self.timeout = timeout
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.netloc = parts.netloc.encode()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> DirectResponse:
        if json is not None:
            body = jsonlib.dumps(json, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        elif content is None:
            body = b""
        elif isinstance(content, str):
            body = content.encode()
        elif isinstance(content, (bytes, bytearray, memoryview)):
            body = bytes(content)
        else:  # an async iterable of chunks
            body = b"".join([bytes(chunk) async for chunk in content])
        head = [(b"host", self.netloc)]
        if body or method in ("POST", "PUT", "PATCH"):  # as httpx: none on a bodiless GET
            head.append((b"content-length", str(len(body)).encode()))
        if json is not None:
            head.append((b"content-type", b"application/json"))
        for name, value in (headers or {}).items():
            if name.lower() not in ("host", "content-length"):
                head.append((name.lower().encode(), value.encode()))
        raw_path, _, query = path.partition("?")
        if params:  # as httpx: params replace a query written in the path
            query = _query(params)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": raw_path,
            "raw_path": (
                raw_path if _PLAIN.fullmatch(raw_path) else quote(raw_path, safe="/%:@!$&'()*+,;=-._~")
            ).encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": head,
            "client": ("127.0.0.1", 0),
            "server": (self.host, self.port),
            "extensions": {},
        }
        sent_body = False
        finished = asyncio.Event()
        status = 500
        response_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = list(message.get("headers") or [])
            elif message["type"] == "http.response.body":
                if method != "HEAD":
                    chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    finished.set()

        try:
            # (asyncio.timeout, not wait_for: the app runs in this task, not in a new one per request)
            async with asyncio.timeout(self.timeout):
                await self.app(scope, receive, send)
        finally:
            finished.set()
        return DirectResponse(status, response_headers, chunks[0] if len(chunks) == 1 else b"".join(chunks))
