"""The interfaces of pyao, gathered in one place.

Each unit, VM and device is written against these. Concrete classes override
only what differs. Later interfaces (stores, schedulers, VMs, devices) join
this file as the units that need them land.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyao.gateway._model import Block, BlockQuery, ChainInfo, ItemRecord, Page, TransactionQuery, Upload


class Signer(ABC):
    """Something that signs ANS-104 data items: a user's wallet, or a unit's own key.

    ``sign`` receives the 48-byte deep hash of the item and returns the raw
    signature bytes for ``signature_type`` (see ``pyao.data.signing.SCHEMES``).
    The MU and SU use the same interface to sign what they create, so a unit's
    key type (RSA for compatibility, Ed25519 for speed) is configuration.
    """

    #: ANS-104 signature type this signer produces.
    signature_type: int

    @property
    @abstractmethod
    def owner(self) -> bytes:
        """The raw public key written into the item's owner field."""

    @abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (a deep hash) and return the raw signature."""

    @property
    def address(self) -> str:
        """The address ao shows for this signer (``From``/``Owner``)."""
        from pyao.data.signing import scheme_for

        return scheme_for(self.signature_type).address(self.owner)


# ==================================================================== gateway
# (interfaces of the permanent store: its storage backend, and the read side a
#  remote Arweave gateway also offers)


class GatewayStore(ABC):
    """The gateway's storage: data items with their tags, owners and data, and blocks.

    Backends: SQLite (embedded default) and PostgreSQL (``pyao.gateway``), and a
    read-only view of a remote Arweave gateway (``pyao.gateway.remote``). One test
    suite runs against every backend. Value types live in ``pyao.gateway._model``.

    Contract:

    * ``put`` stores a verified ``Upload`` (the root item and every item unbundled
      from it) atomically: all of it or nothing. Items already stored are kept as
      they are (an upload is idempotent); it returns False when the root was
      already stored. New items are *pending* until the next ``seal``.
    * ``seal`` makes the next block and assigns every pending item to it. Ingest
      and seal are serialised, so arrival order (``seq``) equals height order.
    * ``transactions`` and ``blocks`` answer one page with opaque cursors that
      never skip or repeat an entry, whatever is stored or sealed between pages.
    * ``read`` yields bytes ``start..end`` (inclusive) of an item's data in
      pieces of at most about a chunk, fetching only the chunks it needs.
    * Backend failures raise ``StoreError``; a read-only backend refuses writes
      with ``RequestError``; bad cursors raise ``RequestError``.
    """

    #: False for a read-only backend (a remote gateway).
    writable: bool = True

    @abstractmethod
    async def info(self) -> ChainInfo:
        """Height and id of the newest block, and the number of pending items."""

    @abstractmethod
    async def put(self, upload: Upload) -> bool:
        """Store an upload; True if its root item is new."""

    @abstractmethod
    async def seal(self, timestamp: int | None = None) -> Block:
        """Make the next block (``timestamp`` in seconds, default now) holding every pending item."""

    @abstractmethod
    async def item(self, item_id: str) -> ItemRecord | None:
        """The item ``item_id`` (with its block, if sealed), or None."""

    @abstractmethod
    def read(self, item_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``start..end`` (inclusive, within the data) of an item's data."""

    @abstractmethod
    async def transactions(self, query: TransactionQuery) -> Page:
        """One page of ``(cursor, ItemRecord)`` matching ``query``."""

    @abstractmethod
    async def blocks(self, query: BlockQuery) -> Page:
        """One page of ``(cursor, Block)`` matching ``query``."""

    @abstractmethod
    async def block(self, height: int) -> tuple[Block, list[str]] | None:
        """The block at ``height`` and the ids of the items in it, or None."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store is unusable afterwards."""


# ==================================================================== end gateway


# ==================================================================== scheduler unit
# (interfaces of the SU: its schedule store)


#: the most slots ``ScheduleStore.quick_page`` answers
QUICK_PAGE = 16


class ScheduleStore(ABC):
    """The SU's durable schedule: one row per slot, plus the upload outbox.

    A row (``pyao.su.ScheduleEntry``) holds the signed assignment and, unless it
    is an assignment of an existing tx, the scheduled item, with the slot's
    nonce, timestamp, block height and hash chain copied out for queries. Slot 0
    of a process is the process item itself.

    The methods block; the SU calls them from its worker threads (the writer,
    the sequencer's lookups and the reader each use their own connection).
    ``write_batch`` is the only writer of slots and commits its rows and outbox
    records in ONE transaction, durably (SQLite WAL with ``synchronous=FULL``; PostgreSQL a normal commit), or raises
    ``StoreError`` having changed nothing. Backends: ``pyao.su.open_store``
    picks SQLite or PostgreSQL from a URL; one test suite runs against both.
    """

    @abstractmethod
    def latest(self, process_ids: list[str]) -> dict[str, object]:
        """The last slot (``ScheduleEntry``) of each of ``process_ids`` that exists here."""

    @abstractmethod
    def existing_ids(self, item_ids: list[str]) -> set[str]:
        """Those of ``item_ids`` already scheduled on any process (posted or assigned)."""

    @abstractmethod
    def existing_pairs(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those ``(process_id, message_id)`` pairs already scheduled."""

    @abstractmethod
    def existing_deep_hashes(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Those ``(process_id, deep_hash)`` pairs of pushed messages already scheduled."""

    @abstractmethod
    def write_batch(self, entries: list[object], uploads: list[bytes], block_height: int | None = None) -> None:
        """Commit ``entries`` (each queued for upload) and raw ``uploads`` in one durable transaction."""

    @abstractmethod
    def page(
        self, process_id: str, lo: int | None, hi: int | None, limit: int, *, by_nonce: bool = False
    ) -> tuple[list[object], bool]:
        """Slots with ``lo < key <= hi`` in nonce order (key: timestamp, or nonce when ``by_nonce``), and
        whether more follow. At most ``limit`` rows, except that a page never ends inside a run of equal
        timestamps: such a run is completed, so a timestamp cursor can never skip a slot."""

    def quick_page(self, process_id: str, lo: int | None, hi: int | None, limit: int) -> list[object] | None:
        """``page`` by timestamp when it is short, answered at once, without waiting (safe to call on the
        event loop): the slots with ``lo < timestamp <= hi`` when there are at most ``min(limit,
        QUICK_PAGE)`` of them; None when there are more, or when the backend cannot answer without
        waiting (then ``page`` answers, on a worker thread). Default: always None."""
        return None

    @abstractmethod
    def entry(self, process_id: str, tx_id: str) -> object | None:
        """The slot of ``process_id`` whose message id or assignment id is ``tx_id``."""

    @abstractmethod
    def slot(self, process_id: str, nonce: int) -> object | None:
        """The slot with this nonce (0: the process itself)."""

    @abstractmethod
    def holds_item(self, item_id: str) -> bool:
        """Whether ``item_id`` was posted here (a process or message whose bytes this SU keeps)."""

    @abstractmethod
    def outbox(self, limit: int) -> list[tuple[int, object]]:
        """Up to ``limit`` pending uploads, oldest first: ``(seq, ScheduleEntry | raw bytes)``."""

    @abstractmethod
    def outbox_done(self, seqs: list[int]) -> None:
        """Forget uploads that reached the gateway."""

    @abstractmethod
    def block_height(self) -> int | None:
        """The last block height a batch was written with, if any."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (idempotent)."""


# ==================================================================== end scheduler unit


# ==================================================================== vm
# (interfaces of the process VMs: a VM per Module-Format, the process instance
#  it makes, and the values that cross that boundary; registry in pyao.vm)


@dataclass(frozen=True)
class Limits:
    """Per-message limits of one process: ``compute`` in the VM's own unit (Lua
    VM instructions for native Lua), ``memory`` in bytes. The CU derives them
    from the ``Compute-Limit``/``Memory-Limit`` tags (process tag over module tag)."""

    compute: int
    memory: int


@dataclass(frozen=True)
class ModuleSource:
    """A module item: its id, owner address, tags (``(name, value)`` pairs) and data (the code)."""

    id: str
    owner: str
    tags: tuple[tuple[str, str], ...]
    data: bytes


@dataclass(frozen=True)
class ProcessContext:
    """The process a VM instance runs: its id, owner address and tags."""

    id: str
    owner: str
    tags: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class EvalResult:
    """One message's evaluation, mapping 1:1 to the CU result JSON.

    ``messages`` are ``{Target, Anchor, Tags: [{name, value}], Data}``, ``spawns``
    ``{Anchor, Tags, Data}``, ``assignments`` ``{Processes: [...], Message}``;
    ``output`` is aos's ``{data, prompt, print}`` (or a string); ``error`` is
    None unless the message failed, in which case the state is the one before it
    and the other fields are empty.
    """

    output: Any = ""
    messages: tuple[dict, ...] = ()
    spawns: tuple[dict, ...] = ()
    assignments: tuple[dict, ...] = ()
    error: Any = None
    gas_used: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        """The CU's result object (``GET /result``): Messages, Spawns, Assignments, Output, Error?, GasUsed."""
        out = {
            "Messages": list(self.messages),
            "Spawns": list(self.spawns),
            "Assignments": list(self.assignments),
            "Output": self.output,
            "GasUsed": self.gas_used,
        }
        if self.error is not None:
            out["Error"] = self.error
        return out

    def encoded(self) -> str:
        """``to_json()`` as the CU stores and serves it (compact, UTF-8 text)."""
        return encode_result(self.to_json())


def encode_result(result: dict) -> str:
    """A result object's JSON text, exactly as the CU stores and serves it."""
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False)


#: how the text of a result without an Error ends (``GasUsed`` is its last key)
_ENDS_WITHOUT_ERROR = re.compile(r',"GasUsed":-?[0-9]+\}\Z')


def result_is_error(text: str) -> bool:
    """Whether a result's JSON text (``encode_result``) holds an ``Error``, mostly without parsing it:
    a key ``"Error":`` can only appear unescaped as a key, so text without one has none."""
    if '"Error":' not in text and _ENDS_WITHOUT_ERROR.search(text):
        return False
    return "Error" in json.loads(text)


class ProcessInstance(ABC):
    """One process's live state inside a VM.

    ``handle`` evaluates one message: ``msg`` and ``env`` are the dicts of spec
    §2.4 (msg: Id, From, Owner, Target, Data, Tags [{name, value}], Timestamp,
    Block-Height, Nonce, Epoch, Hash-Chain, Cron, Forwarded-By, Signature,
    Anchor, Read-Only; env: {Process: {Id, Owner, Tags}, Module: {Id, Owner,
    Tags}}). It never raises for a failing message: a Lua error or a broken
    limit is an ``EvalResult.error``, and the state stays as it was before.
    """

    @abstractmethod
    def handle(self, msg: dict, env: dict) -> EvalResult:
        """Evaluate one message and return its result."""

    def handle_many(self, msgs: list[dict], env: dict) -> list[EvalResult]:
        """Evaluate messages in order under one ``env``: the same results and state
        as ``handle`` on each in turn (a failing one rolls back only itself). A VM
        overrides it when a batch is cheaper (the native Lua VM crosses into Lua
        once per batch)."""
        return [self.handle(msg, env) for msg in msgs]

    def result_json_many(self, msgs: list[dict], env: dict) -> list[str]:
        """``handle_many``, each result as its JSON text (``EvalResult.encoded``), which is what the
        CU stores. A VM overrides it when it can write that text more cheaply than the objects."""
        return [r.encoded() for r in self.handle_many(msgs, env)]

    @abstractmethod
    def snapshot(self) -> bytes:
        """The whole state as bytes; equal histories give equal bytes."""

    @abstractmethod
    def restore(self, data: bytes) -> None:
        """Replace the state by one made by ``snapshot`` (same module and VM); raises SnapshotError."""

    def footprint(self) -> int:
        """Host memory the instance holds, in bytes (an estimate; the CU's LRU of hot processes uses it)."""
        return 0


class VM(ABC):
    """A process VM, selected by the module's ``Module-Format`` (see ``pyao.vm.VMS``).

    Constructed as ``cls(devices=...)`` by ``pyao.vm.vm_for``: the devices
    (``Devices``, below) its processes may reach."""

    #: the Module-Format values this VM serves
    formats: tuple[str, ...] = ()

    @abstractmethod
    def instantiate(self, module: ModuleSource, process: ProcessContext, limits: Limits) -> ProcessInstance:
        """A fresh instance of ``process`` running ``module``; raises ModuleError if it cannot load."""


# ==================================================================== end vm


# ==================================================================== devices
# (services a process reaches from inside its VM, keyed by ``name@version``:
#  ``weavedrive@1.0`` (files from the permanent store), ``llm@1.0`` (inference).
#  A VM gets a ``Devices`` mapping at construction; ``pyao.vm.vm_for`` passes it.)


class DriveFile(ABC):
    """One opened WeaveDrive file: read by byte range, never loaded whole."""

    #: the file's size in bytes
    size: int

    @abstractmethod
    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end of the file, ``b""`` past it)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the file holds."""


class Device(ABC):  # noqa: B024 - a device kind names its own methods
    """A device: its ``name@version`` is its key in a ``Devices`` mapping."""

    name: str = ""


class FileDrive(Device):
    """``weavedrive@1.0``: opens ``/data/<id>``, ``/tx/<id>`` and ``/block/<height>`` for a process.

    ``open`` decides access from the process and the message being evaluated
    (attestations count only at or below the message's ``Block-Height``, so
    the answer is deterministic); a file that may not be read raises
    ``DeviceAccessDenied``, a missing one ``NotFound``, never data."""

    name = "weavedrive@1.0"

    @abstractmethod
    def open(self, path: str, process: ProcessContext, msg: dict) -> DriveFile:
        """The file at ``path`` as the process may read it while handling ``msg``."""


@dataclass(frozen=True)
class DeviceReply:
    """What a ``ProcessDevice`` call gives back: the compute it cost (in the VM's
    unit, charged against the message's ``Compute-Limit``), the device's new
    per-process state (None clears it) and the values the process receives
    (None, bool, int, float, str or bytes each)."""

    cost: int
    state: bytes | None
    values: tuple = ()


class ProcessDevice(Device):
    """A device a process calls from inside its VM (``llm@1.0``).

    The device keeps no per-process truth of its own: the VM stores the
    device's opaque ``state`` bytes inside the process state (so it is
    snapshotted, restored and rolled back with it) and hands them to every call.
    A call must be a pure function of (state, process, msg, op, args) as far as
    the process can see; caches are the device's business. It never spends more
    than ``budget``; a request it cannot serve raises ``DeviceError`` (which the
    process sees as a Lua error), and then the state stays as it was."""

    @abstractmethod
    def call(
        self, state: bytes | None, budget: int, process: ProcessContext, msg: dict, op: str, args: tuple
    ) -> DeviceReply:
        """Serve ``op(*args)`` for ``process`` while it handles ``msg``."""


#: the devices a VM may use, by ``name@version``
Devices = dict[str, Device]


# ==================================================================== end devices


# ==================================================================== compute unit
# (interfaces of the CU: the durable store of evaluation results)


@dataclass(frozen=True)
class Evaluation:
    """One evaluation of a process, as the CU stores it: a scheduled message or a cron tick.

    ``seq`` is the evaluation's place in the process's stream (0 = the process
    message itself); it orders evaluations exactly as they ran. ``ordinate`` is
    the nonce of the scheduled message (for a cron tick: of the message it
    follows); ``message_id`` is None and ``cron`` names the cron
    (``"<index>-<interval>"``) for a tick. ``result_json`` is the result
    object's text (``encode_result``), as stored and served: the VM worker that
    evaluated it wrote it, and nothing parses it unless ``result`` is read.
    """

    process_id: str
    seq: int
    message_id: str | None
    ordinate: int
    cron: str | None
    timestamp: int
    block_height: int
    result_json: str
    is_error: bool

    @classmethod
    def of(cls, process_id: str, seq: int, message_id: str | None, ordinate: int, cron: str | None,
           timestamp: int, block_height: int, result: dict[str, Any]) -> Evaluation:  # fmt: skip
        """An evaluation from a result object (``EvalResult.to_json()``)."""
        return cls(process_id, seq, message_id, ordinate, cron, timestamp, block_height, encode_result(result),
                   "Error" in result)  # fmt: skip

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Evaluation:
        """From ``dataclasses.asdict`` of one (checkpoints keep it so); also the older form with ``result``."""
        if "result" in fields:
            rest = {k: v for k, v in fields.items() if k != "result"}
            return cls.of(**rest, result=fields["result"])
        return cls(**fields)

    @cached_property
    def result(self) -> dict[str, Any]:
        """The result object (parsed once, on first use)."""
        return json.loads(self.result_json)


class ResultStore(ABC):
    """The CU's durable results: one row per evaluation, keyed by (process_id, seq).

    Backends: SQLite (default) and PostgreSQL (``pyao.cu.open_result_store``);
    one test suite runs against both. The methods block; the CU calls them from
    one worker thread, so a connection is never shared between threads.

    Contract:

    * ``put`` stores evaluations in one transaction; rows already stored (same
      process and seq) are kept as they are, so a replay after a restart is
      idempotent. Failures raise ``StoreError`` having changed nothing.
    * ``page`` answers non-error evaluations (errored ones are stored, but
      results listings exclude them, as the official CU does) in ``seq`` order,
      within every bound given: ``seq_gt``/``seq_lt``/``seq_ge``/``seq_le`` and
      ``ts_ge``/``ts_le`` (timestamps, ms); ``only_cron`` keeps cron ticks only.
    """

    #: a URL another OS process can open this same store by (``open_result_store``): the CU's VM
    #: worker processes then store their evaluations themselves; None when it cannot (in memory)
    shared_url: str | None = None

    @abstractmethod
    def put(self, evaluations: list[Evaluation]) -> int:
        """Store ``evaluations`` (idempotent per (process_id, seq)); how many of them were new."""

    def put_groups(self, groups: list[list[Evaluation]]) -> list[int]:
        """``put`` of each group (several processes' pages), how many of each were new. A backend
        that can makes it one transaction (one commit for several pages). Default: one ``put`` each."""
        return [self.put(group) for group in groups]

    @abstractmethod
    def by_message(self, process_id: str, message_id: str) -> Evaluation | None:
        """The evaluation of scheduled message ``message_id`` on ``process_id``."""

    @abstractmethod
    def at(self, process_id: str, timestamp: int, ordinate: int, cron: str | None) -> Evaluation | None:
        """The evaluation a results cursor names, if stored."""

    @abstractmethod
    def last(self, process_id: str) -> Evaluation | None:
        """The newest evaluation of ``process_id``."""

    @abstractmethod
    def page(
        self,
        process_id: str,
        *,
        limit: int,
        descending: bool = False,
        only_cron: bool = False,
        seq_gt: int | None = None,
        seq_lt: int | None = None,
        seq_ge: int | None = None,
        seq_le: int | None = None,
        ts_ge: int | None = None,
        ts_le: int | None = None,
    ) -> list[Evaluation]:
        """Up to ``limit`` non-error evaluations within the bounds, by seq (descending if asked)."""

    def recent_result(self, process_id: str, message_id: str) -> bytes | None:
        """The stored result JSON of ``message_id`` if this store still holds it in memory, without
        blocking (safe from any thread); None means "ask ``by_message``". Default: never."""
        return None

    def holds_recent(self, process_id: str, message_id: str) -> bool:
        """Whether ``recent_result`` would answer this message now (cheaper than asking it)."""
        return self.recent_result(process_id, message_id) is not None

    def remember(self, process_id: str, results: list[tuple[str, str]]) -> None:
        """Hold (message id, result JSON) of evaluations another connection has committed (a CU VM
        worker process stores its own) for ``recent_result``. Default: nothing is held."""
        return None

    @abstractmethod
    def close(self) -> None:
        """Release connections (idempotent)."""


# ==================================================================== end compute unit


# ==================================================================== messenger unit
# (interfaces of the MU: its durable work queue)


class MessengerStore(ABC):
    """The MU's durable work: crank jobs, monitored processes and the processes it has scheduled.

    A job (``pyao.mu.Job``) is one step of a crank: fetch a result, sign an
    outbox entry, send a signed item, assign. Each step's output is recorded
    together with the step's completion, so a restarted MU resumes exactly
    where it stopped. Job ids are deterministic: adding a job that exists
    changes nothing. Backends: ``pyao.mu.open_store`` picks SQLite or
    PostgreSQL from a URL; one test suite runs against both.

    The methods block; the MU calls them from one worker thread. Every write
    is one durable transaction (SQLite WAL with ``synchronous=FULL``), or raises
    ``StoreError`` having changed nothing.
    """

    @abstractmethod
    def add(self, jobs: list[Any]) -> None:
        """Record new pending jobs (those whose id exists are left as they are)."""

    @abstractmethod
    def due(self, now: float, limit: int, skip: set[str] | frozenset[str] = frozenset()) -> list[Any]:
        """Up to ``limit`` pending jobs due at ``now`` and not in ``skip``, oldest due first."""

    @abstractmethod
    def next_due(self) -> float | None:
        """When the earliest pending job is due (epoch seconds), or None when none is pending."""

    @abstractmethod
    def complete(self, job_id: str, children: list[Any]) -> None:
        """Forget a finished job and record the jobs it led to, in one transaction."""

    def write_batch(self, ops: list[tuple[str, tuple[Any, ...]]]) -> None:
        """Run ``("add", (jobs,))`` and ``("complete", (job_id, children))`` in order, as one
        durable transaction where the backend can (group commit). Default: one by one."""
        for name, args in ops:
            if name not in ("add", "complete"):
                raise ValueError(f"write_batch runs add and complete, not {name!r}")
            getattr(self, name)(*args)

    @abstractmethod
    def retry(self, job_id: str, attempts: int, next_at: float, error: str) -> None:
        """Count a failed attempt and postpone the job to ``next_at``."""

    @abstractmethod
    def fail(self, job_id: str, attempts: int, error: str) -> None:
        """Give a job up: it stays, with state ``failed``, for inspection; it is never run again."""

    @abstractmethod
    def jobs(self, state: str, limit: int) -> list[Any]:
        """Up to ``limit`` jobs in ``state`` (``pending`` or ``failed``), oldest first."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of jobs per state."""

    @abstractmethod
    def remember_process(self, process_id: str, scheduler: str, module: str) -> None:
        """Record a process the MU scheduled (its SU wallet address and module)."""

    @abstractmethod
    def process(self, process_id: str) -> tuple[str, str] | None:
        """``(scheduler address, module)`` of a process the MU scheduled, if any."""

    @abstractmethod
    def monitor(self, process_id: str) -> bool:
        """Start monitoring ``process_id``' cron results; False if it already is."""

    @abstractmethod
    def unmonitor(self, process_id: str) -> bool:
        """Stop monitoring ``process_id``; False if it was not."""

    @abstractmethod
    def monitors(self) -> dict[str, str | None]:
        """Monitored processes and their cron cursors (None: not started)."""

    @abstractmethod
    def advance(self, process_id: str, cursor: str, jobs: list[Any]) -> None:
        """Store a monitor's new cursor and the crank jobs of the cron results before it, in one transaction
        (nothing, if the process is no longer monitored)."""

    @abstractmethod
    def close(self) -> None:
        """Release connections (idempotent)."""


# ==================================================================== end messenger unit
