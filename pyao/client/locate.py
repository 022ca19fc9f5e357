"""Finding a process's scheduler unit, as scheduler-utils does: the shared locator of the units.

Contract:

* ``process(pid)``: the process item's gateway metadata (GraphQL
  ``transactions(ids: [pid])``): owner, tags. ``None`` when the gateway does
  not have it (yet).
* ``scheduler_url(address)``: the ``Url`` of the newest ``Scheduler-Location``
  item owned by that SU wallet (``sort: HEIGHT_DESC, first: 1``), cached for
  its ``Time-To-Live`` (ms). Tag names match case-insensitively.
* ``locate(pid)``: the process's ``Scheduler`` tag → ``(address, url)``. A process
  the SU has scheduled but not yet uploaded is not on the gateway for a moment:
  then every SU with a Scheduler-Location is asked (``GET /processes/{pid}``),
  and one that has it, whose ``Scheduler`` tag names that SU's own wallet, wins
  (the role the official su-router plays).
* ``scheduler(url)``: one ``SchedulerClient`` per SU url.

Side effects: reads from the gateway, and from SUs for processes not yet uploaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyao.client.gateway import GatewayClient
from pyao.client.scheduler import SchedulerClient
from pyao.errors import NotFound, RequestError, UnitError

_TX_FIELDS = "id recipient owner { address key } tags { name value }"
ITEMS_QUERY = f"query($ids: [ID!]) {{ transactions(ids: $ids, first: 100) {{ edges {{ node {{ {_TX_FIELDS} }} }} }} }}"
LOCATION_QUERY = """query($owner: String!) {
  transactions(owners: [$owner], tags: [{name: "Data-Protocol", values: ["ao"]},
                                         {name: "Type", values: ["Scheduler-Location"]}],
               sort: HEIGHT_DESC, first: 1) { edges { node { tags { name value } } } } }"""
ALL_LOCATIONS_QUERY = """query {
  transactions(tags: [{name: "Data-Protocol", values: ["ao"]}, {name: "Type", values: ["Scheduler-Location"]}],
               sort: HEIGHT_DESC, first: 100) { edges { node { owner { address } tags { name value } } } } }"""


def tag_value(tags: list[dict[str, str]], name: str) -> str | None:
    """The first tag named ``name``, case-insensitively (scheduler-utils ``findTagValue``)."""
    lowered = name.lower()
    for tag in tags:
        if str(tag.get("name", "")).lower() == lowered:
            return tag.get("value")
    return None


class SchedulerLocator:
    """Reads process items and Scheduler-Location records from a gateway."""

    def __init__(
        self,
        gateway: GatewayClient,
        scheduler_factory: Callable[[str], SchedulerClient] = SchedulerClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self._factory = scheduler_factory
        self._clock = clock
        self._schedulers: dict[str, SchedulerClient] = {}
        self._locations: dict[str, tuple[str, float]] = {}

    def scheduler(self, url: str) -> SchedulerClient:
        url = url.rstrip("/")
        if url not in self._schedulers:
            self._schedulers[url] = self._factory(url)
        return self._schedulers[url]

    async def close(self) -> None:
        for client in self._schedulers.values():
            await client.close()
        self._schedulers.clear()

    async def process(self, process_id: str) -> dict[str, Any] | None:
        """The gateway's GraphQL node for ``process_id`` (``id, recipient, owner, tags``), or None."""
        data = await self.gateway.graphql(ITEMS_QUERY, {"ids": [process_id]})
        edges = data["transactions"]["edges"]
        return edges[0]["node"] if edges else None

    async def scheduler_url(self, address: str) -> str:
        cached = self._locations.get(address)
        if cached and cached[1] > self._clock():
            return cached[0]
        data = await self.gateway.graphql(LOCATION_QUERY, {"owner": address})
        edges = data["transactions"]["edges"]
        if not edges:
            raise NotFound(f"no Scheduler-Location item owned by scheduler {address}")
        tags = edges[0]["node"]["tags"]
        url, ttl = tag_value(tags, "Url"), tag_value(tags, "Time-To-Live")
        if not url or not ttl:
            raise UnitError(f"the Scheduler-Location of {address} lacks a Url or Time-To-Live tag")
        try:
            ttl_s = max(0, int(ttl)) / 1000
        except ValueError:
            raise UnitError(f"the Scheduler-Location of {address} has a bad Time-To-Live {ttl!r}") from None
        self._locations[address] = (url.rstrip("/"), self._clock() + ttl_s)
        return url.rstrip("/")

    async def locate(self, process_id: str) -> tuple[str, str]:
        """``(scheduler address, scheduler url)`` of a process, from its ``Scheduler`` tag."""
        node = await self.process(process_id)
        if node is None:
            return await self._ask_schedulers(process_id)
        address = tag_value(node["tags"], "Scheduler")
        if not address:
            raise RequestError(f"{process_id} has no Scheduler tag: not an ao process")
        return address, await self.scheduler_url(address)

    async def _ask_schedulers(self, process_id: str) -> tuple[str, str]:
        data = await self.gateway.graphql(ALL_LOCATIONS_QUERY)
        asked: set[str] = set()
        for edge in data["transactions"]["edges"]:
            address = edge["node"]["owner"]["address"]
            url = (tag_value(edge["node"]["tags"], "Url") or "").rstrip("/")
            if not url or url in asked:
                continue
            asked.add(url)
            try:
                meta = await self.scheduler(url).process(process_id)
            except (NotFound, RequestError, UnitError):
                continue
            if tag_value(meta.get("tags") or [], "Scheduler") == address:
                return address, url
        raise NotFound(f"process {process_id} was found neither on the gateway nor on any scheduler unit")
