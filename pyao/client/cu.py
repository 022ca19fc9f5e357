"""Client of a compute unit (pyao's or the official CU): results, dry runs, state and cron results."""

from __future__ import annotations

from typing import Any

from pyao.client._base import UnitClient
from pyao.errors import UnitError


def _params(**values: Any) -> dict[str, str]:
    return {k.rstrip("_").replace("_", "-"): str(v) for k, v in values.items() if v is not None}


class ComputeClient(UnitClient):
    unit_name = "compute unit"

    async def info(self) -> dict[str, Any]:
        """``GET /``: ``{"address", "timestamp"}``."""
        return await self.json("GET", "/")

    async def result(self, message_id: str, process_id: str, *, no_busy: bool = True) -> dict[str, Any]:
        """``GET /result/{msg}?process-id=``: the evaluation's outbox (``Messages``, ``Spawns``, …).

        A 202 "evaluation in progress" answer raises ``UnitError`` (try again later)."""
        params = {"process-id": process_id, **({"no-busy": "1"} if no_busy else {})}
        response = await self.request("GET", f"/result/{message_id}", params=params)
        if response.status_code == 202:
            raise UnitError(f"compute unit is still evaluating {message_id} on {process_id}", 202)
        try:
            body = response.json()
        except ValueError as exc:
            raise UnitError("compute unit answered /result with non-JSON") from exc
        if not isinstance(body, dict):
            raise UnitError("compute unit answered /result with a non-object")
        return body

    async def results(
        self,
        process_id: str,
        *,
        from_: str | None = None,
        to: str | None = None,
        sort: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """``GET /results/{pid}``: one page ``{"pageInfo", "edges": [{"cursor", "node"}]}``."""
        return await self.json(
            "GET", f"/results/{process_id}", params=_params(from_=from_, to=to, sort=sort, limit=limit)
        )

    async def cron(
        self, process_id: str, *, from_: str | None = None, to: str | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """``GET /cron/{pid}``: one page of cron evaluations, shaped like ``results``."""
        return await self.json("GET", f"/cron/{process_id}", params=_params(from_=from_, to=to, limit=limit))

    async def dry_run(self, process_id: str, message: dict[str, Any], *, to: str | None = None) -> dict[str, Any]:
        """``POST /dry-run?process-id=``: evaluate ``message`` read-only."""
        params = _params(process_id=process_id, to=to)
        return await self.json("POST", "/dry-run", params=params, json=message)

    async def state(self, process_id: str, *, to: str | None = None) -> tuple[bytes, dict[str, str]]:
        """``GET /state/{pid}``: the raw memory and the ``Last-*`` headers."""
        response = await self.request("GET", f"/state/{process_id}", params=_params(to=to))
        headers = {k: v for k, v in response.headers.items() if k.lower().startswith("last-")}
        return response.content, headers
