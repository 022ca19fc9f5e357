"""Cron monitoring: poll the CU's cron results of monitored processes and crank their outboxes.

Contract (as the official MU's ``clients/cron.js``): every ``cron_interval_s``
each monitored process is polled with ``GET {CU}/cron/{pid}?from=<cursor>&limit=<cron_page>``;
each edge's Messages, Spawns and Assignments become crank jobs (no root, so no
``Pushed-For``), recorded together with the new cursor in one transaction. The
first cursor is the newest result's (``GET /results/{pid}?sort=DESC&limit=1``),
stored at once, so cron results evaluated later are never skipped. Monitors and
cursors are durable: a restarted MU resumes every monitor where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from pyao.client import ComputeClient
from pyao.config import MUConfig
from pyao.errors import PyaoError
from pyao.mu import _core as core

log = logging.getLogger("pyao.mu")


class Monitor:
    def __init__(
        self,
        config: MUConfig,
        store: Any,
        compute: ComputeClient,
        on_jobs: Callable[[], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store  # an AsyncStore
        self.compute = compute
        self.on_jobs = on_jobs
        self.clock = clock
        self._next: dict[str, float] = {}

    async def run(self) -> None:
        while True:
            try:
                monitors = await self.store.call("monitors")
            except PyaoError as exc:
                log.warning("cannot read monitors: %s", exc)
                monitors = {}
            now = self.clock()
            due = [pid for pid in monitors if self._next.get(pid, 0.0) <= now]
            if due:
                await asyncio.gather(*(self._poll_safely(pid, monitors[pid]) for pid in due))
            await asyncio.sleep(min(0.2, self.config.cron_interval_s))

    async def _poll_safely(self, pid: str, cursor: str | None) -> None:
        more = False
        try:
            more = await self.poll(pid, cursor)
        except PyaoError as exc:
            log.info("cron poll of %s failed: %s", pid, exc)
        self._next[pid] = self.clock() + (0.0 if more else self.config.cron_interval_s)

    async def initial_cursor(self, pid: str) -> str:
        page = await self.compute.results(pid, sort="DESC", limit=1)
        edges = page.get("edges") or []
        return str(edges[0]["cursor"]) if edges else ""

    async def poll(self, pid: str, cursor: str | None) -> bool:
        """One poll; True when more cron results wait."""
        if cursor is None:
            cursor = await self.initial_cursor(pid)
            await self.store.call("advance", pid, cursor, [])
        page = await self.compute.cron(pid, from_=cursor or None, limit=self.config.cron_page)
        edges = page.get("edges") or []
        if not edges:
            return False
        jobs = []
        for edge in edges:
            node = edge.get("node") if isinstance(edge, dict) else None
            if isinstance(node, dict):
                jobs += core.crank_jobs(core.job_id("cron", pid, edge.get("cursor")), pid, node, None, now=time.time())
        await self.store.call("advance", pid, str(edges[-1]["cursor"]), jobs)
        if jobs:
            self.on_jobs()
        return bool(page.get("pageInfo", {}).get("hasNextPage"))

    def forget(self, pid: str) -> None:
        self._next.pop(pid, None)
