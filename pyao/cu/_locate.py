"""Finding what a process needs before it can run: its SU, its metadata, its module, blocks.

Contract (as the official CU with scheduler-utils):

* The SU: the process item's ``Scheduler`` tag (read from the gateway, GraphQL
  ``transactions(ids: [pid])``) names the SU's wallet; the newest
  ``Scheduler-Location`` item owned by that wallet (``sort: HEIGHT_DESC, first: 1``)
  gives its ``Url``. Tag names are matched case-insensitively, as scheduler-utils
  does. A location is cached for its ``Time-To-Live`` (ms).
* Process metadata: the SU's ``GET /processes/{pid}`` (owner, tags, block, timestamp).
* The module: gateway GraphQL ``transactions(ids: [module])`` (owner, tags) and its
  source from ``GET /raw/{module}``; modules are immutable and cached.
* Blocks: GraphQL ``blocks(height: {min}, first, sort: HEIGHT_ASC)``, block timestamps
  in seconds turned into ms.

Side effects: only reads from the gateway and SUs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyao.abc import ModuleSource
from pyao.client import GatewayClient, SchedulerClient
from pyao.cu._cron import Block
from pyao.cu._messages import address_from
from pyao.errors import NotFound, RequestError, UnitError

_TX_FIELDS = "id anchor signature recipient owner { address key } tags { name value }"
ITEMS_QUERY = f"query($ids: [ID!]) {{ transactions(ids: $ids, first: 100) {{ edges {{ node {{ {_TX_FIELDS} }} }} }} }}"
LOCATION_QUERY = """query($owner: String!) {
  transactions(owners: [$owner], tags: [{name: "Data-Protocol", values: ["ao"]},
                                         {name: "Type", values: ["Scheduler-Location"]}],
               sort: HEIGHT_DESC, first: 1) { edges { node { tags { name value } } } } }"""
BLOCKS_QUERY = """query($min: Int, $after: String) {
  blocks(height: {min: $min}, first: 100, after: $after, sort: HEIGHT_ASC) {
    pageInfo { hasNextPage } edges { cursor node { height timestamp } } } }"""


def tag_value(tags: list[dict[str, str]], name: str) -> str | None:
    """The first tag named ``name``, case-insensitively (scheduler-utils ``findTagValue``)."""
    lowered = name.lower()
    for tag in tags:
        if str(tag.get("name", "")).lower() == lowered:
            return tag.get("value")
    return None


def exact_tag(tags: list[dict[str, str]], name: str) -> str | None:
    return next((t.get("value") for t in tags if t.get("name") == name), None)


def pairs(tags: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((t["name"], t["value"]) for t in tags)


@dataclass(frozen=True)
class ProcessMeta:
    """A process as the CU evaluates it."""

    id: str
    owner: str
    #: ``[{name, value}]`` as the SU answers them (env.Process.Tags)
    tags: list[dict[str, str]]
    su_url: str
    block_height: int
    timestamp: int
    module_id: str


@dataclass(frozen=True)
class ModuleMeta:
    source: ModuleSource
    tags: list[dict[str, str]]

    @property
    def format(self) -> str:
        return exact_tag(self.tags, "Module-Format") or ""


class Locator:
    """Reads process, module, scheduler and block metadata from the gateway and SUs."""

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
        self._modules: dict[str, ModuleMeta] = {}

    def scheduler(self, url: str) -> SchedulerClient:
        """One client per SU url."""
        url = url.rstrip("/")
        if url not in self._schedulers:
            self._schedulers[url] = self._factory(url)
        return self._schedulers[url]

    async def close(self) -> None:
        for client in self._schedulers.values():
            await client.close()
        self._schedulers.clear()

    async def items(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Gateway metadata (GraphQL node) of the items among ``ids`` that it has."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            data = await self.gateway.graphql(ITEMS_QUERY, {"ids": ids[start : start + 100]})
            for edge in data["transactions"]["edges"]:
                found[edge["node"]["id"]] = edge["node"]
        return found

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

    async def process(self, process_id: str) -> ProcessMeta:
        node = (await self.items([process_id])).get(process_id)
        if node is None:
            raise NotFound(f"process {process_id} was not found on the gateway")
        scheduler = tag_value(node["tags"], "Scheduler")
        if not scheduler:
            raise RequestError(f"{process_id} has no Scheduler tag: not an ao process")
        su_url = await self.scheduler_url(scheduler)
        meta = await self.scheduler(su_url).process(process_id)
        return _process_meta(process_id, su_url, meta)

    async def module(self, module_id: str) -> ModuleMeta:
        if module_id in self._modules:
            return self._modules[module_id]
        node = (await self.items([module_id])).get(module_id)
        if node is None:
            raise NotFound(f"module {module_id} was not found on the gateway")
        data = await self.gateway.raw(module_id)
        source = ModuleSource(module_id, address_from(node["owner"]), pairs(node["tags"]), data)
        meta = ModuleMeta(source, node["tags"])
        self._modules[module_id] = meta
        return meta

    async def blocks(self, min_height: int, max_timestamp_ms: int) -> list[Block]:
        """Blocks from ``min_height`` up to the first one at or past ``max_timestamp_ms``, in height order."""
        out: list[Block] = []
        after = None
        while True:
            data = await self.gateway.graphql(BLOCKS_QUERY, {"min": min_height, "after": after})
            page = data["blocks"]
            for edge in page["edges"]:
                block = Block(int(edge["node"]["height"]), int(edge["node"]["timestamp"]) * 1000)
                out.append(block)
                if block.timestamp_ms >= max_timestamp_ms:
                    return out
            if not page["pageInfo"]["hasNextPage"] or not page["edges"]:
                return out
            after = page["edges"][-1]["cursor"]


def _process_meta(process_id: str, su_url: str, meta: dict[str, Any]) -> ProcessMeta:
    try:
        tags = [{"name": str(t["name"]), "value": str(t["value"])} for t in meta["tags"]]
        owner = address_from(meta["owner"])
        height, timestamp = int(meta["block"]), int(meta["timestamp"])
    except (KeyError, TypeError, ValueError) as exc:
        raise UnitError(f"the SU answered /processes/{process_id} badly: {exc!r}") from None
    module = exact_tag(tags, "Module")
    if exact_tag(tags, "Type") != "Process" or not module:
        raise RequestError(f"{process_id} is not an ao process (Type=Process and Module tags are required)")
    return ProcessMeta(process_id, owner, tags, su_url, height, timestamp, module)
