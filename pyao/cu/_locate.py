"""Finding what a process needs before it can run: its SU, its metadata, its module, blocks.

Contract (as the official CU with scheduler-utils):

* The SU: ``pyao.client.SchedulerLocator`` (shared with the MU): the process's
  ``Scheduler`` tag and that wallet's newest ``Scheduler-Location``, or, for a
  process not uploaded yet, the SU that has it.
* Process metadata: the SU's ``GET /processes/{pid}`` (owner, tags, block, timestamp).
* The module: gateway GraphQL ``transactions(ids: [module])`` (owner, tags) and its
  source from ``GET /raw/{module}``; modules are immutable and cached.
* Blocks: GraphQL ``blocks(height: {min}, first, sort: HEIGHT_ASC)``, block timestamps
  in seconds turned into ms.

Side effects: only reads from the gateway and SUs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pyao.abc import ModuleSource
from pyao.client import SchedulerLocator
from pyao.client.locate import tag_value
from pyao.cu._cron import Block
from pyao.cu._messages import address_from
from pyao.errors import NotFound, RequestError, UnitError

_TX_FIELDS = "id anchor signature recipient owner { address key } tags { name value }"
ITEMS_QUERY = f"query($ids: [ID!]) {{ transactions(ids: $ids, first: 100) {{ edges {{ node {{ {_TX_FIELDS} }} }} }} }}"
BLOCKS_QUERY = """query($min: Int, $after: String) {
  blocks(height: {min: $min}, first: 100, after: $after, sort: HEIGHT_ASC) {
    pageInfo { hasNextPage } edges { cursor node { height timestamp } } } }"""

__all__ = ["Locator", "ModuleMeta", "ProcessMeta", "exact_tag", "pairs", "tag_value"]


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


#: processes whose metadata the locator remembers
PROCESS_CACHE_SIZE = 10_000


class Locator(SchedulerLocator):
    """The shared scheduler locator, plus what only the CU reads: process meta from
    the SU, modules, assigned items' metadata and blocks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._modules: dict[str, ModuleMeta] = {}
        #: pid -> (scheduler address, the SU's answer for the process): a process item never changes
        #: (its SU's URL is looked up again, under the Scheduler-Location's time to live)
        self._processes: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()

    async def items(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Gateway metadata (GraphQL node) of the items among ``ids`` that it has."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            data = await self.gateway.graphql(ITEMS_QUERY, {"ids": ids[start : start + 100]})
            for edge in data["transactions"]["edges"]:
                found[edge["node"]["id"]] = edge["node"]
        return found

    async def process_meta(self, process_id: str) -> ProcessMeta:
        held = self._processes.get(process_id)
        if held is not None:
            self._processes.move_to_end(process_id)
            address, meta = held
            return _process_meta(process_id, await self.scheduler_url(address), meta)
        address, su_url = await self.locate(process_id)
        meta = await self.scheduler(su_url).process(process_id)
        found = _process_meta(process_id, su_url, meta)  # only a good answer is remembered
        self._processes[process_id] = (address, meta)
        if len(self._processes) > PROCESS_CACHE_SIZE:
            self._processes.popitem(last=False)
        return found

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
