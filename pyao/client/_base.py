"""The shared base of unit clients: one httpx.AsyncClient, typed errors."""

from __future__ import annotations

from typing import Any

import httpx

from pyao.errors import NotFound, RequestError, UnitError


class UnitClient:
    """Base for clients of one unit at ``url``.

    ``transport`` lets ``pyao up`` wire units in one process (``httpx.ASGITransport``)
    and tests use ``httpx.MockTransport``; by default it is real HTTP.
    """

    unit_name = "unit"

    def __init__(self, url: str, *, transport: httpx.AsyncBaseTransport | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, transport=transport, timeout=timeout)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; map transport failures and 4xx/5xx answers to typed errors."""
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
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


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        if isinstance(body, dict) and "error" in body:
            return str(body["error"])
    except ValueError:
        pass
    return response.text[:200]
