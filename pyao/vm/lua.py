"""The native Lua VM: Lua 5.3 (lupa) running pyao's aos-compatible library.

Contract
--------
* Assumes: a module whose data is Lua source (UTF-8 text), ``Module-Format:
  lua53-pyao-native-1``. The source runs once, at instantiation, after our
  library (``pyao/lua``), in the process's sandbox, with ``ao.init`` already
  called on the process's env (so ``ao.id`` is known at the top level).
* Produces: per message an ``EvalResult`` mapping 1:1 to the CU result JSON.
* Side effects: none outside the instance. The sandbox has no os (only a
  deterministic ``os.time``), debug or binary ``load``, and no io unless the
  VM was given a ``weavedrive@1.0`` device: then ``io.open``/``io.lines``/``io.type`` open
  WeaveDrive paths only (``/data/<id>``…, read-only; see ``_lua_io``);
  ``require`` serves the bundled modules only (the library, ``decimal`` and the
  blueprints, see ``BLUEPRINTS``); lupa's ``python`` table is gone. Work in C
  that the instruction hook cannot see (backtracking patterns, ``string.rep``
  of nothing, ``table.insert/remove/move``) is charged or metered too. The one
  way out is the device door, ``require("devices").call(name, op, ...)``, served
  by the ``ProcessDevice``s the VM was built with (``_host.lua``, section devices).

Atomicity and snapshots
-----------------------
The instance keeps a *base* (canonical bytes of the Lua state, see
``_host_state.lua``) and the *log* of messages handled successfully since. The state
is re-serialised on an amortised schedule (``COMPACT_RATIO``, below): once the
work done since the last attempt, counted in instructions, outweighs the cost
of serialising. An attempt fails while the state holds something that cannot
be written (a coroutine parked by ``Receive``), and then the log simply grows.
A message that fails (a Lua error, the compute or memory limit) makes the
instance rebuild a fresh runtime from base + log, so the state is exactly the
one before that message; that state then becomes the base, so a run of failing
messages costs a rebuild each, not a replay of the log each. ``snapshot()`` is base + log (+ the schedule's
counters); ``restore()`` rebuilds the same way, so a parked ``Receive``
survives a checkpoint by being replayed. The schedule is counted, not timed,
so equal histories give equal snapshots.

Speed
-----
``handle_many`` runs a page of messages in one call into Lua. A msg crosses as
its shape (field names, one string cached in Lua) plus its values (no JSON
either way unless it has an unusual shape), env as JSON decoded once per
distinct env; a result comes back as one DEL-joined string of its strings plus
its shape as integers (``_parse_run``), split in C. ``result_json_many`` (what
the CU's workers call) writes each result's JSON text straight from that
flat form, without the objects (see "results as JSON text" below); the text is
exactly ``EvalResult.encoded()``.

While ``handle_many`` runs, CPython's cyclic garbage collector is paused (and
resumed after, if it was on): nothing the VM makes per message is cyclic (a
replaced runtime is freed by its reference count), so the pause frees the same
objects at the same moments; it only spares the collections that the many new
result containers would trigger, each walking every object alive in the
process (~6 us a Transfer in bench/bench_lua_vm.py). Whatever cyclic garbage
other code makes meanwhile is collected at the next collection after.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import hashlib
import json
import math
import struct
from importlib import resources
from itertools import chain, repeat
from json.encoder import encode_basestring as _escape

import lupa.lua53 as lupa

from pyao.abc import (
    VM,
    Devices,
    EvalResult,
    FileDrive,
    Limits,
    ModuleSource,
    ProcessContext,
    ProcessDevice,
    ProcessInstance,
)
from pyao.errors import DeviceError, ModuleError, NotFound, SnapshotError
from pyao.vm._lua_io import LuaDriveBridge

LUA_NATIVE_FORMAT = "lua53-pyao-native-1"
LIBRARY_MODULES = ("json", "utils", "handlers", "ao", "process")
#: bundled modules loaded only on ``require``: name -> file under pyao/lua
OPTIONAL_MODULES = {
    "decimal": "decimal.lua",
    "llama": "llama.lua",
    "Llama": "llama.lua",  # AO-Llama's require(".Llama")
    "blueprints.token": "blueprints/token.lua",
    "blueprints.chatroom": "blueprints/chatroom.lua",
    "blueprints.llama_fed": "blueprints/llama_fed.lua",
}
#: blueprints: ``require("blueprints.<name>")``, ``require(".<name>")``, or Eval of ``blueprint_source(name)``
BLUEPRINTS = ("token", "chatroom")
# Amortised compaction (see "Atomicity and snapshots" above): the state is
# re-serialised once the work done since the last attempt reaches COMPACT_RATIO
# times the cost of serialising it. Both are counted in Lua instructions, not
# timed, so two CUs compact at the same messages and their snapshots agree byte
# for byte: a message costs its gas plus PER_MESSAGE_WORK (the host's own work),
# a serialisation SERIALISE_WORK plus WORK_PER_STATE_BYTE per byte of the last
# base. Calibrated with bench/bench_lua_vm.py: serialising costs ~1 ms plus
# ~40 ns a byte, one instruction ~20 ns, the host's work ~70 us a message.
# Serialising then takes under 1/COMPACT_RATIO of the time spent handling, and
# a rollback replays at most about COMPACT_RATIO serialisations' worth of work.
COMPACT_RATIO = 20
PER_MESSAGE_WORK = 3_000
SERIALISE_WORK = 50_000
WORK_PER_STATE_BYTE = 2
BATCH = 128  # messages per crossing into Lua in handle_many (64 took ~1% more instructions a Transfer)
BOOT_BUDGET = 10**9  # instructions for our library plus the module's top level
_MAGIC = b"PYAO-LUA-STATE-1\n"


def _read(package: str, name: str) -> bytes:
    return resources.files(package).joinpath(name).read_bytes()


_HOST = _read("pyao.vm", "_host.lua")
_HOST_PARTS = tuple(_read("pyao.vm", f"_host_{part}.lua") for part in ("guards", "flat", "state"))
_SOURCES = {name.encode(): _read("pyao.lua", f"{name}.lua") for name in LIBRARY_MODULES}
_SOURCES.update({name.encode(): _read("pyao.lua", path) for name, path in OPTIONAL_MODULES.items()})
_LIBRARY_DIGEST = hashlib.sha256(
    _HOST + b"".join(_HOST_PARTS) + b"".join(_SOURCES[k] for k in sorted(_SOURCES))
).hexdigest()


def blueprint_source(name: str) -> str:
    """The Lua text of a bundled blueprint (``token``), for an Eval (aos's ``.load-blueprint``)."""
    if name not in BLUEPRINTS:
        raise KeyError(f"unknown blueprint {name!r}; known: {', '.join(BLUEPRINTS)}")
    return _SOURCES[f"blueprints.{name}".encode()].decode()


def _dumps(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class _UnitFailure(Exception):
    """A device failed for the unit's own reasons during a batch (carries the device's exception)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Runtime:
    """One lupa runtime with our host code booted in it."""

    def __init__(
        self,
        module_source: bytes,
        limits: Limits,
        env_json: bytes = b"",
        devices: Devices | None = None,
        process: ProcessContext | None = None,
        drive: LuaDriveBridge | None = None,
    ) -> None:
        self.limits = limits
        self.device_failure: Exception | None = None
        self.lua = lupa.LuaRuntime(
            encoding=None,
            register_eval=False,
            register_builtins=False,
            unpack_returned_tuples=True,
            max_memory=limits.memory,
        )
        self.lua.set_max_memory(0)  # boot unbounded; the cap applies from the first message
        self.host = self.lua.execute(_HOST, *_HOST_PARTS, name="=pyao-host")
        self.host.set_tag_names(*(self.lua.table_from([t.encode() for t in ts]) for ts in (TAG_NAMES, TAG_VALUES)))
        if drive is not None:
            self.host.attach_drive(drive)
        doors = {name.encode(): self._device_door(dev, process) for name, dev in (devices or {}).items()
                 if isinstance(dev, ProcessDevice) and process is not None}  # fmt: skip
        ok, err = self.host.boot(
            self.lua.table_from(_SOURCES), module_source, BOOT_BUDGET, env_json, self.lua.table_from(doors)
        )
        if not ok:
            raise ModuleError(f"module failed to load: {err.decode(errors='replace')}")
        self.host.mark_permanent()
        self.lua.set_max_memory(limits.memory, total=True)

    def _device_door(self, device: ProcessDevice, process: ProcessContext):
        """The host function behind ``require("devices").call`` for one device (see _host.lua)."""

        def door(state, budget, msg_id, chain, read_only, height, op, *args):
            msg = {"Id": _str(msg_id), "Hash-Chain": _str(chain), "Read-Only": bool(read_only),
                   "Block-Height": height}  # fmt: skip
            try:
                reply = device.call(state, int(budget), process, msg, op.decode(), args)
            except (DeviceError, NotFound) as exc:  # the process's request cannot be served: its error
                return 0, state, f"{device.name}: {exc}".encode()
            except Exception as exc:  # the unit's failure (a gateway down): not a result, see handle
                self.device_failure = exc
                return 0, state, b"device failure"
            return (reply.cost, reply.state, None, *reply.values)

        return door

    def unlimited(self):
        """Context for host work (serialising) that must not hit the process's memory cap."""
        return _Unlimited(self)

    def run_batch(self, env_json: bytes, calls: list[tuple], allowance: int, per_message: int) -> tuple:
        """``host.handle_batch`` over ``calls`` (each from ``_flatten``, or ``(b"j", msg_json)``):
        per message run, ``ok, gas, *result`` (see ``_parse_batch``). Raises lupa's
        LuaError when something fails outside the per-message pcall (memory while
        encoding, say): the caller cannot know how far the batch got; raises the
        device's exception when a device failed for the unit's own reasons (a
        gateway down), so a transient failure never becomes a recorded result."""
        args = list(chain.from_iterable(calls))
        self.device_failure = None
        vals = self.host.handle_batch(self.limits.compute, env_json, allowance, per_message, len(calls), *args)
        if self.device_failure is not None:  # a device failed for the unit's reasons: no result to book
            raise _UnitFailure(self.device_failure)
        return vals

    def serialize(self) -> bytes | None:
        with self.unlimited():
            data, _why = self.host.serialize()
        return data

    def deserialize(self, data: bytes) -> None:
        with self.unlimited():
            try:
                self.host.deserialize(data)
            except lupa.LuaError as exc:
                raise SnapshotError(f"cannot restore Lua state: {exc}") from None


class _Unlimited:
    def __init__(self, rt: _Runtime) -> None:
        self.rt = rt

    def __enter__(self) -> None:
        self.rt.lua.set_max_memory(0)

    def __exit__(self, *exc: object) -> None:
        self.rt.lua.set_max_memory(self.rt.limits.memory, total=True)


#: tag names and values that cross in a result's shape as codes (1, 2, ...), not as
#: strings: the library's own and the token blueprint's (see ``_host_flat.lua``, set_tag_names)
TAG_NAMES = (
    "Data-Protocol", "Variant", "Type", "Reference", "Action", "Recipient", "Quantity", "Sender", "X-Reference",
    "X-Origin", "Message-Id", "Error", "Balance", "Ticker", "Account", "Name", "Logo", "Denomination", "From-Process",
    "From-Module", "Module", "Content-Type", "Pushed-For", "Cast",
)  # fmt: skip
TAG_VALUES = (
    "ao", "ao.TN.1", "Message", "Process", "Debit-Notice", "Credit-Notice", "Transfer-Error", "Mint-Error",
    "Total-Supply", "Insufficient Balance!", "application/json", "Spawned",
)  # fmt: skip

_INT64 = range(-(1 << 63), 1 << 63)
_MAX_FLAT_TAGS = 10_000  # more go as JSON: a batch's values must fit Lua's stack


_KEYS: dict[str, bytes] = {}  # field and tag names seen before, encoded once


def _key(name: str, _keys: dict = _KEYS) -> bytes:
    b = _keys.get(name)
    if b is None:
        b = name.encode()
        if len(name) <= 64 and len(_keys) < 8192:
            _keys[name] = b
    return b


_SHAPES: dict[tuple, tuple[bytes, int] | None] = {}  # a msg's field names -> (shape, place of Tags)


def _shape(names: tuple) -> tuple[bytes, int] | None:
    """The field names joined with "\\0" and where ``Tags`` is among them (-1: absent),
    or None when the names cannot be carried so (none at all, not a str, or holding "\\0")."""
    shape = _SHAPES.get(names)
    if shape is None and names not in _SHAPES:
        # (no names at all: the empty shape would read as one field named "")
        ok = bool(names) and all(type(name) is str and "\0" not in name for name in names)
        shape = ("\0".join(names).encode(), names.index("Tags") if "Tags" in names else -1) if ok else None
        if len(_SHAPES) < 256:
            _SHAPES[names] = shape
    return shape


def _finite(kind: type, value: object) -> bool:
    return kind is float and math.isfinite(value)


def _flatten_any(msg: dict) -> tuple | None:
    """``(b"s", shape, v1, …, vn, ntags | -1, name1, value1, …)`` for a msg of plain
    scalars plus a ``Tags`` list of ``{name, value}`` strings, or None for anything
    else (which then goes as JSON). ``shape`` names the fields (see ``_shape``), one
    value per name: None (Lua's nil) for a None field and in the place of Tags. The
    Lua table built from it equals the one the JSON decoder builds: a None value is
    a missing key, as JSON's null is."""
    if len(msg) > _MAX_FLAT_TAGS:
        return None
    shape = _shape(tuple(msg))
    if shape is None:
        return None
    values = list(msg.values())
    tags = None
    if shape[1] >= 0:
        tags = values[shape[1]]
        values[shape[1]] = None
    for value in values:  # (checked first, then encoded in one comprehension: faster than both in one loop)
        kind = type(value)
        if kind is str or kind is bool or value is None:
            continue
        if not ((kind is int and value in _INT64) or _finite(kind, value)):
            return None
    flat: list = [b"s", shape[0], *[value.encode() if type(value) is str else value for value in values]]
    if tags is None:
        flat.append(-1)
        return tuple(flat)
    if type(tags) is not list or len(tags) > _MAX_FLAT_TAGS:
        return None
    flat.append(len(tags))
    return _with_tags(flat, tags)


def _with_tags(flat: list, tags: list) -> tuple | None:
    """``flat`` with each tag's name key and value bytes added, as a tuple; None when a tag is not
    a ``{name, value}`` pair of strings (shared by ``_flatten_any`` and the compiled flatteners)."""
    add = flat.append
    for tag in tags:
        if type(tag) is not dict or len(tag) != 2:
            return None
        name, value = tag.get("name"), tag.get("value")
        if type(name) is not str or type(value) is not str:
            return None
        add(_key(name))
        add(value.encode())
    return tuple(flat)


_FLATTENERS: dict[tuple, object] = {}  # a msg's field names -> its compiled flattener (see _flattener)
_LAST_FLATTENER: list = [None, None]  # the field names met last and their flattener
_NONE = type(None)
_UNROLLED_TAGS = 6


def _flattener(names: tuple, values: tuple):
    """A function that flattens a msg with these field names, in this order, whose values
    have the kinds these have (str, int, bool or None; a list as Tags): Python source
    written for the layout, one type test per field, compiled once; a msg it does not fit
    (another kind somewhere, a non-list Tags) goes to ``_flatten_any``, so the tuple is
    always ``_flatten_any``'s. None when the layout has no compiled form (a float, a name
    that cannot cross): then every msg of it takes ``_flatten_any``."""
    shape = _shape(names)
    if shape is None or not names or len(names) > _MAX_FLAT_TAGS:
        return None
    tags_at = shape[1]
    conds, outs = [], []
    for i, value in enumerate(values):
        v, kind = f"v{i}", type(value)
        if i == tags_at:
            conds.append(f"type({v}) is list and len({v}) <= {_MAX_FLAT_TAGS}")
            outs.append("None")
        elif kind is str:
            conds.append(f"type({v}) is str")
            outs.append(f"{v}.encode()")
        elif kind is int and value in _INT64:
            conds.append(f"type({v}) is int and {_INT64.start} <= {v} < {_INT64.stop}")
            outs.append(v)
        elif kind is bool:
            conds.append(f"type({v}) is bool")
            outs.append(v)
        elif kind is _NONE:
            conds.append(f"{v} is None")
            outs.append("None")
        else:
            return None
    head = ", ".join(["SHAPE", *outs])
    if tags_at < 0:
        tags = f"""
        return (b"s", {head}, -1)"""
    else:  # up to _UNROLLED_TAGS tags written out one by one (no loop, no list), more in a loop
        t = f"v{tags_at}"
        tags = f"""
        ntags = len({t})"""
        tags += f"""
        if ntags == 0:
            return (b"s", {head}, 0)"""
        for n in range(1, _UNROLLED_TAGS + 1):
            ts, ns, vs = ([f"{x}{j}" for j in range(n)] for x in "tnw")
            is_dict = " and ".join(f"type({x}) is dict and len({x}) == 2" for x in ts)
            is_str = " and ".join(f"type({x}) is str" for x in ns + vs)
            names_values = "".join(f"{ns[j]}, {vs[j]}, " for j in range(n))
            gets = ", ".join(f'{x}.get("name"), {x}.get("value")' for x in ts)
            pairs = "".join(f", keys({ns[j]}) or _key({ns[j]}), {vs[j]}.encode()" for j in range(n))
            tags += f"""
        if ntags == {n}:
            {"".join(f"{x}, " for x in ts)}= {t}
            if {is_dict}:
                {names_values}= {gets}
                if {is_str}:
                    return (b"s", {head}, {n}{pairs})
            return None"""
        tags += f"""
        return _with_tags([b"s", {head}, ntags], {t})"""
    source = f"""def flatten(msg):
    {"".join(f"v{i}, " for i in range(len(values)))}= msg.values()
    if {" and ".join(conds) or "True"}:{tags}
    return _flatten_any(msg)
"""
    namespace: dict = {
        "SHAPE": shape[0],
        "_key": _key,
        "keys": _KEYS.get,
        "_with_tags": _with_tags,
        "_flatten_any": _flatten_any,
    }
    exec(compile(source, "<pyao msg flattener>", "exec"), namespace)
    return namespace["flatten"]


def _flatten(msg: dict, _flatteners: dict = _FLATTENERS, _last: list = _LAST_FLATTENER) -> tuple | None:
    """``_flatten_any(msg)``, by the flattener compiled for the msg's field names (the CU sends
    every msg with the same names, in the same order; see ``_flattener``)."""
    names = tuple(msg)
    if names == _last[0]:  # (the same names as last time: no lookup)
        return _last[1](msg)
    flatten = _flatteners.get(names)
    if flatten is None and len(_flatteners) < 256:  # (False: this layout has no compiled form)
        flatten = _flattener(names, tuple(msg.values()))
        _flatteners[names] = flatten or False
    if flatten:
        _last[0], _last[1] = names, flatten
        return flatten(msg)
    return _flatten_any(msg)


def _call(msg: dict) -> tuple:
    """How ``_Runtime.run_batch`` takes a msg: flat fields, else ``(b"j", msg_json)``."""
    flat = _flatten(msg)
    return flat if flat is not None else (b"j", _dumps(msg))


def _unflatten(flat: tuple) -> dict:
    """The msg dict back from ``_flatten``'s tuple (for snapshots): same Lua table when decoded."""
    msg: dict = {}
    names = flat[1].decode().split("\0")
    i = 2
    for name in names:
        value = flat[i]
        i += 1
        if value is not None and name != "Tags":
            msg[name] = value.decode() if type(value) is bytes else value
    if flat[i] >= 0:
        msg["Tags"] = [
            {"name": flat[j].decode(), "value": flat[j + 1].decode()} for j in range(i + 1, i + 1 + 2 * flat[i], 2)
        ]
    return msg


_DECODE = bytes.decode
_TEXTS: dict[bytes, str] = {}  # short strings seen before (tag names, "ao", prompts): decoded once


def _str(value: object) -> str:
    """A Lua value handed to the host as text ("" for nil)."""
    if value is None:
        return ""
    return _text(value) if isinstance(value, bytes) else str(value)


def _text(b: bytes, _texts: dict = _TEXTS, _decode=_DECODE) -> str:
    s = _texts.get(b)
    if s is None:
        s = _decode(b, "utf-8", "replace")
        if len(b) <= 64 and len(_texts) < 8192:
            _texts[b] = s
    return s


# A flat result's shape (see ``_host_flat.lua``) is read in one place, ``_layout``; the
# three ways of building a result from its strings (objects for any shape, objects from
# compiled source, JSON text from a compiled template) each walk that layout.
#: a field's value in a layout: the place of one of the result's strings (an int), or a
#: coded tag name or value (the str itself, one of ours: TAG_NAMES, TAG_VALUES)
Ref = int | str
#: one message or spawn: its fields in the JSON form's key order, as (key, ref); the
#: "Tags" field's value is its list of (name ref, value ref)
Fields = list[tuple[str, object]]


def _layout(shape: tuple) -> tuple[list[Fields], list[Fields], list[tuple[int, int]], int]:
    """Messages, Spawns, Assignments (as (place of the message id, process count); the
    process ids follow it) and how many strings the result has (the Output's data and
    prompt are strings 0 and 1)."""
    items: tuple[list[Fields], list[Fields]] = ([], [])
    p, i = 2, 0
    for which in (0, 1):  # Messages, Spawns
        count, i = shape[i], i + 1
        for _ in range(count):
            flags, ntags = shape[i], shape[i + 1]
            i += 2
            fields: Fields = []
            if flags & 1:
                fields.append(("Anchor", p))
                p += 1
            if flags & 2:
                fields.append(("Data", p))
                p += 1
            if ntags >= 0:
                tags: list[tuple[Ref, Ref]] = []
                for code in shape[i : i + ntags]:
                    name: Ref
                    value: Ref
                    if code & 255:
                        name = TAG_NAMES[(code & 255) - 1]
                    else:
                        name, p = p, p + 1
                    if code >> 8:
                        value = TAG_VALUES[(code >> 8) - 1]
                    else:
                        value, p = p, p + 1
                    tags.append((name, value))
                fields.append(("Tags", tags))
                i += ntags
            if flags & 4:
                fields.append(("Target", p))
                p += 1
            items[which].append(fields)
    assignments = []
    for nprocs in shape[i + 1 : i + 1 + shape[i]]:
        assignments.append((p, nprocs))
        p += 1 + nprocs
    return items[0], items[1], assignments, p


def _build_any(shape: tuple, parts: list[str], gas: int) -> EvalResult:
    """A result from its strings and its shape, for any shape (see ``_builder``)."""
    messages, spawns, assignments, _count = _layout(shape)

    def ref(r: Ref) -> str:
        return r if type(r) is str else parts[r]

    def item(fields: Fields) -> dict:
        return {
            key: [{"name": ref(n), "value": ref(v)} for n, v in value] if key == "Tags" else parts[value]
            for key, value in fields
        }  # fmt: skip

    output = {"data": parts[0], "print": True, "prompt": parts[1]}
    return _result(
        output,
        tuple(item(fields) for fields in messages),
        tuple(item(fields) for fields in spawns),
        tuple({"Message": parts[p], "Processes": parts[p + 1 : p + 1 + n]} for p, n in assignments),
        gas,
    )


_BUILDERS: dict[tuple, object] = {}  # a result's shape -> its builder (parts, gas) -> EvalResult
_MAX_BUILDERS = 256
_MAX_COMPILED_STRINGS = 512  # bigger results take _build_any: no huge generated functions


def _builder(shape: tuple):
    """The function that builds a result of this shape from its strings: for the shapes
    met most (a Transfer's two notices, a reply), Python source written for the shape,
    one expression with every index a constant, compiled once; else ``_build_any``.
    Only integers from the shape and our own coded tag names and values go into the
    source, never a string of the result."""
    build = _BUILDERS.get(shape)
    if build is not None:
        return build
    messages, spawns, layout_assignments, p = _layout(shape)

    def ref(r: Ref) -> str:
        return repr(r) if type(r) is str else f"p[{r}]"

    def item(fields: Fields) -> str:
        out = []
        for key, value in fields:
            if key == "Tags":
                tags = ", ".join(f'{{"name": {ref(n)}, "value": {ref(v)}}}' for n, v in value)
                out.append(f'"Tags": [{tags}]')
            else:
                out.append(f'"{key}": p[{value}]')
        return "{" + ", ".join(out) + "}"

    exprs = [[item(fields) for fields in messages], [item(fields) for fields in spawns]]
    assignments = [f'{{"Message": p[{a}], "Processes": p[{a + 1}:{a + 1 + n}]}}' for a, n in layout_assignments]
    if p > _MAX_COMPILED_STRINGS:
        build = functools.partial(_build_any, shape)
    else:
        as_tuple = lambda items: "(" + "".join(x + ", " for x in items) + ")"  # noqa: E731
        source = (
            "def build(p, gas):\n"
            f'    return _result({{"data": p[0], "print": True, "prompt": p[1]}}, {as_tuple(exprs[0])}, '
            f"{as_tuple(exprs[1])}, {as_tuple(assignments)}, gas)\n"
        )
        namespace: dict = {"_result": _result}
        exec(compile(source, f"<pyao result shape {len(_BUILDERS)}>", "exec"), namespace)
        build = namespace["build"]
    if len(_BUILDERS) < _MAX_BUILDERS:
        _BUILDERS[shape] = build
    return build


#: what a flat result's strings are joined with (see ``_host_flat.lua``): DEL, which JSON
#: leaves as it is (see "results as JSON text")
_SEP = "\x7f"


def _parse_run(vals: tuple, i: int, kept_parts, _decode=_DECODE) -> tuple[bool, EvalResult, int]:
    """One message's run in ``host.handle_batch``'s output at ``i``: ok, its result, the next
    position. ``kept_parts``: the host's, for a result whose strings hold ``_SEP`` themselves."""
    ok, gas, kind = vals[i : i + 3]
    if not ok:
        return False, EvalResult(error=_text(kind), gas_used=gas), i + 3
    if kind == b"S":
        parts = _decode(vals[i + 3], "utf-8", "replace").split(_SEP)
        if len(parts) != vals[i + 4]:  # a string held _SEP itself: take them one by one
            first = vals[i + 5]
            parts = [_text(b) for b in kept_parts(first, first + vals[i + 4] - 1)]
        end = i + 7 + vals[i + 6]
        shape = vals[i + 7 : end]
        build = _BUILDERS.get(shape) or _builder(shape)
        return True, build(parts, gas), end
    if kind == b"E":
        return True, EvalResult(error=_text(vals[i + 3]), gas_used=gas), i + 4
    return True, _json_result(vals[i + 3], gas), i + 4  # b"J"


# ---------------------------------------------------------------- results as JSON text
# The CU stores each result's JSON text (``ProcessInstance.result_json_many``). For a flat
# result that text is written straight from the joined strings: the join is escaped as one
# JSON string and split at the separator, DEL, which escaping leaves as it is (escaping goes
# character by character, so the pieces are the escaped strings: the first with its opening
# quote, the last with its closing one, the template adding the others), and the pieces go
# into a template compiled once per shape. A piece count other than the string count means
# a string held DEL itself: then the result is built as objects and encoded the usual way.
# Either way the text is ``encode_result(result.to_json())``. (With NUL as the separator,
# splitting the escaped join at "\u0000" took longer than escaping the strings one by one:
# that search stops at every escaped control character; DEL is one character to find.)


def _text_template(shape: tuple) -> list[str | int]:
    """The result's JSON text for ``shape`` as constant segments and piece numbers (ints,
    -1 for GasUsed; a piece is an escaped string, see above: the quotes a piece lacks are
    constant segments), in the key order of ``EvalResult.to_json`` and ``_layout``."""
    messages, spawns, assignments, count = _layout(shape)

    def piece(k: int) -> list[str | int]:
        return ['"' if k else "", k, '"' if k != count - 1 else ""]

    def ref(r: Ref) -> list[str | int]:
        # (our own names and values: plain ASCII, nothing to escape but the quotes)
        return [_escape(r)] if type(r) is str else piece(r)

    def item(fields: Fields) -> list[str | int]:
        out: list[str | int] = ["{"]
        for n, (key, value) in enumerate(fields):
            out.append("," if n else "")
            if key == "Tags":
                out.append('"Tags":[')
                for j, (name, tag_value) in enumerate(value):
                    out += [',{"name":' if j else '{"name":', *ref(name), ',"value":', *ref(tag_value), "}"]
                out.append("]")
            else:
                out += [f'"{key}":', *piece(value)]
        out.append("}")
        return out

    out: list[str | int] = ['{"Messages":[']
    for k, fields in enumerate(messages):
        out += ["," if k else "", *item(fields)]
    out.append('],"Spawns":[')
    for k, fields in enumerate(spawns):
        out += ["," if k else "", *item(fields)]
    out.append('],"Assignments":[')
    for k, (at, nprocs) in enumerate(assignments):
        out += ["," if k else "", '{"Message":', *piece(at), ',"Processes":[']
        for j in range(nprocs):
            out += ["," if j else "", *piece(at + 1 + j)]
        out.append("]}")
    out += ['],"Output":{"data":', *piece(0), ',"print":true,"prompt":', *piece(1), '},"GasUsed":', -1, "}"]
    return out


def _text_builder(shape: tuple):
    """``(pieces, gas) -> text`` for a result of this shape: one f-string compiled once
    (the shapes met most), else the template filled in by a loop (big results)."""
    build = _TEXT_BUILDERS.get(shape)
    if build is not None:
        return build
    template = _text_template(shape)
    if len(template) > 4 * _MAX_COMPILED_STRINGS:
        build = functools.partial(_fill_template, template)
    else:
        body = "".join(
            ("{gas}" if part == -1 else f"{{q[{part}]}}") if type(part) is int
            else part.replace("{", "{{").replace("}", "}}")
            for part in template
        )  # fmt: skip
        # the constants are ours (keys, brackets, commas, quotes): no ' or backslash to escape
        assert "'" not in body and "\\" not in body
        namespace: dict = {}
        exec(compile(f"def build(q, gas):\n    return f'{body}'\n", "<pyao result text>", "exec"), namespace)
        build = namespace["build"]
    if len(_TEXT_BUILDERS) < _MAX_BUILDERS:
        _TEXT_BUILDERS[shape] = build
    return build


def _fill_template(template: list, q: list[str], gas: int) -> str:
    return "".join(str(gas) if part == -1 else q[part] if type(part) is int else part for part in template)


_TEXT_BUILDERS: dict[tuple, object] = {}  # a result's shape -> (pieces, gas) -> its JSON text


def _parse_run_text(vals: tuple, i: int, kept_parts, _decode=_DECODE) -> tuple[str, bool, int, int]:
    """As ``_parse_run``, the result as its JSON text: text, whether it failed, gas, next position."""
    ok, gas, kind = vals[i : i + 3]
    if ok and kind == b"S" and type(gas) is int:
        pieces = _escape(_decode(vals[i + 3], "utf-8", "replace")).split(_SEP)
        if len(pieces) == vals[i + 4]:
            end = i + 7 + vals[i + 6]
            shape = vals[i + 7 : end]
            build = _TEXT_BUILDERS.get(shape) or _text_builder(shape)
            return build(pieces, gas), False, gas, end
    _ok, result, end = _parse_run(vals, i, kept_parts)
    return result.encoded(), result.error is not None, result.gas_used, end


def _plain_result(output: object, messages: tuple, spawns: tuple, assignments: tuple, gas: int) -> EvalResult:
    return EvalResult(output=output, messages=messages, spawns=spawns, assignments=assignments, gas_used=gas)


def _quick_result(output: object, messages: tuple, spawns: tuple, assignments: tuple, gas: int) -> EvalResult:
    """``EvalResult(...)`` without the frozen dataclass's ``__init__`` (one ``object.__setattr__``
    per field, about half the cost of a Transfer's parse): the fields go into ``__dict__`` at once."""
    result = _new(EvalResult)
    result.__dict__.update(
        output=output, messages=messages, spawns=spawns, assignments=assignments, error=None, gas_used=gas
    )
    return result


def _pick_result_builder():
    """``_quick_result`` while it builds exactly what the constructor builds (checked once, here)."""
    sample = ({"data": "d"}, ({"Data": "x"},), (), ({"Message": "m", "Processes": []},), 7)
    fields = [f.name for f in dataclasses.fields(EvalResult)]
    try:
        quick = _quick_result(*sample)
    except (AttributeError, TypeError):  # slots, or no instance __dict__
        return _plain_result
    plain = _plain_result(*sample)
    same = quick == plain and vars(quick) == vars(plain) and list(vars(quick)) == fields
    plain_class = not hasattr(EvalResult, "__post_init__") and not hasattr(EvalResult, "__slots__")
    return _quick_result if same and plain_class else _plain_result


_new = object.__new__
_result = _pick_result_builder()


def _json_result(payload: bytes, gas: int) -> EvalResult:
    out = json.loads(_text(payload))
    if "Error" in out:
        return EvalResult(error=out["Error"], gas_used=gas)
    return EvalResult(
        output=out.get("Output", ""),
        messages=tuple(out.get("Messages") or ()),
        spawns=tuple(out.get("Spawns") or ()),
        assignments=tuple(out.get("Assignments") or ()),
        gas_used=gas,
    )


def _boot_env(module: ModuleSource, process: ProcessContext) -> dict:
    """The env the module's top level sees (``ao.id``, ``ao.authorities``…), shaped as the CU's env."""

    def tags(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
        return [{"name": n, "value": v} for n, v in pairs]

    return {
        "Process": {"Id": process.id, "Owner": process.owner, "Tags": tags(process.tags)},
        "Module": {"Id": module.id, "Owner": module.owner, "Tags": tags(module.tags)},
    }


class LuaProcess(ProcessInstance):
    """A process running in the native Lua VM (see the module docstring)."""

    def __init__(
        self,
        module: ModuleSource,
        process: ProcessContext,
        limits: Limits,
        compact_every: int | None = None,
        devices: Devices | None = None,
    ) -> None:
        self.module, self.process, self.limits = module, process, limits
        self.compact_every = None if compact_every is None else max(1, compact_every)
        self.devices: Devices = devices or {}
        drive = self.devices.get("weavedrive@1.0")
        self._drive = LuaDriveBridge(drive, process) if isinstance(drive, FileDrive) else None
        self._digest = hashlib.sha256(_LIBRARY_DIGEST.encode() + b"\0" + module.data).hexdigest()
        self._boot_env = _dumps(_boot_env(module, process))
        self._rt = self._runtime()
        base = self._rt.serialize()
        if base is None:
            raise ModuleError("the module's top level left state that cannot be serialised (a coroutine?)")
        self._base: bytes = base
        self._log: list[tuple[tuple, bytes]] = []  # (msg as _Runtime.handle takes it, env_json)
        self._work = 0  # work since the last compaction attempt, in instructions (see COMPACT_RATIO)
        self._compact_at = _compact_threshold(len(base))
        self._env_seen_obj: dict | None = None  # the env last seen, and a copy to notice changes in place
        self._env_seen: dict | None = None
        self._env_json = b""

    # ------------------------------------------------------------ messages

    def handle(self, msg: dict, env: dict) -> EvalResult:
        return self.handle_many([msg], env)[0]

    def handle_many(self, msgs: list[dict], env: dict) -> list[EvalResult]:
        """The messages in order, as ``handle`` one by one would, with fewer crossings into Lua.

        CPython's cyclic collector is paused meanwhile (see "Speed"): a page makes
        tens of thousands of acyclic containers (results, log entries) that would
        otherwise trigger dozens of collections walking every object alive."""
        return self._paused_collector(msgs, env, False)

    def result_json_many(self, msgs: list[dict], env: dict) -> list[str]:
        """``handle_many``, each result as its JSON text (``EvalResult.encoded``), written from
        the flat form without the objects (see "results as JSON text")."""
        return self._paused_collector(msgs, env, True)

    def _paused_collector(self, msgs: list[dict], env: dict, as_text: bool) -> list:
        collecting = gc.isenabled()
        if collecting:
            gc.disable()
        try:
            return self._handle_many(msgs, env, as_text)
        finally:
            if collecting:
                gc.enable()

    def _handle_many(self, msgs: list[dict], env: dict, as_text: bool) -> list:
        env_json = self._env_text(env)
        calls = [_call(msg) for msg in msgs]
        results: list = []  # EvalResults, or their texts (as_text)
        pos, careful = 0, 0  # careful: messages left to run one at a time after a batch broke
        while pos < len(calls):
            size = 1 if careful else BATCH
            if self.compact_every is not None:
                size = min(size, max(1, self.compact_every - len(self._log)))
            chunk = calls[pos : pos + size]
            allowance = 1 << 62 if self.compact_every is not None else self._compact_at - self._work
            try:
                vals = self._rt.run_batch(env_json, chunk, allowance, PER_MESSAGE_WORK)
            except _UnitFailure as failure:
                self._rebuild()  # the batch's messages are not booked: back to the state before it
                raise failure.cause from None
            except lupa.LuaError as exc:
                if len(chunk) > 1:
                    self._rebuild()
                    careful = len(chunk)
                    continue
                self._rollback()
                error = "memory limit exceeded" if isinstance(exc, lupa.LuaMemoryError) else str(exc)
                results.append(EvalResult(error=error).encoded() if as_text else EvalResult(error=error))
                pos += 1
                careful = max(0, careful - 1)
                continue
            if as_text:
                done = self._take_text(vals, chunk, env_json, results)
            else:
                done = self._take(vals, chunk, env_json, results)
            pos += done
            careful = max(0, careful - done)
        return results

    def _take(self, vals: tuple, chunk: list[tuple], env_json: bytes, results: list[EvalResult]) -> int:
        """Books the runs of one batch: log, work, results; rolls back or compacts. Returns how many ran."""
        i = 0
        kept_parts = self._rt.host.kept_parts
        for n, call in enumerate(chunk, 1):
            _ok, result, i = _parse_run(vals, i, kept_parts)
            results.append(result)
            if result.error is not None:
                self._rollback()
                return n
            self._log.append((call, env_json))
            self._work += result.gas_used + PER_MESSAGE_WORK
            if i >= len(vals):
                if self._compact_due():
                    self._compact()
                return n
        raise AssertionError("unreachable: the batch ran every message")

    def _take_text(self, vals: tuple, chunk: list[tuple], env_json: bytes, results: list[str]) -> int:
        """``_take``, each result as its JSON text (``_parse_run_text``). The log and the work are
        booked for the batch at once, up to the message that failed or ended it."""
        i, n, nvals, work, failed = 0, 0, len(vals), 0, False
        kept_parts, add, parse = self._rt.host.kept_parts, results.append, _parse_run_text
        while i < nvals:
            text, failed, gas, i = parse(vals, i, kept_parts)
            add(text)
            n += 1
            if failed:
                break
            work += gas
        if not 0 < n <= len(chunk):
            raise AssertionError("a batch gave no result, or more results than it had messages")
        booked = n - 1 if failed else n
        self._log.extend(zip(chunk[:booked], repeat(env_json)))
        self._work += work + booked * PER_MESSAGE_WORK
        if failed:
            self._rollback()
        elif self._compact_due():
            self._compact()
        return n

    def _env_text(self, env: dict) -> bytes:
        """env as JSON, re-encoded only when it changed (the engine passes one env per process)."""
        if env is not self._env_seen_obj or env != self._env_seen:
            self._env_seen_obj, self._env_seen = env, copy.deepcopy(env)
            self._env_json = _dumps(env)
        return self._env_json

    def _compact_due(self) -> bool:
        if self.compact_every is not None:
            return len(self._log) >= self.compact_every
        return self._work >= self._compact_at

    def _compact(self) -> None:
        """Try to make the current state the new base. Fails while a Receive is parked:
        then the log keeps growing, and the next attempt waits twice as long."""
        self._work = 0
        base = self._rt.serialize()
        if base is None:
            self._compact_at *= 2
            return
        self._base, self._log = base, []
        self._compact_at = _compact_threshold(len(base))

    def _rollback(self) -> None:
        """Back to the state before a failed message; then write it as the base, so that a
        run of failing messages costs a rebuild each, not a replay of the whole log each."""
        self._rebuild()
        if self._log:
            self._compact()

    def _runtime(self) -> _Runtime:
        return _Runtime(self.module.data, self.limits, self._boot_env, self.devices, self.process, self._drive)

    def _rebuild(self) -> None:
        """A fresh runtime holding base + log: the state before the failed message."""
        rt = self._runtime()
        rt.deserialize(self._base)
        pos = 0
        while pos < len(self._log):
            env_json = self._log[pos][1]
            chunk = []
            while pos < len(self._log) and len(chunk) < BATCH and self._log[pos][1] == env_json:
                chunk.append(self._log[pos][0])
                pos += 1
            try:
                vals = rt.run_batch(env_json, chunk, 1 << 62, 0)
            except lupa.LuaError:
                vals = ()
            i = 0
            for _ in chunk:
                if i >= len(vals):
                    raise SnapshotError("replaying the message log did not repeat its results")
                _ok, result, i = _parse_run(vals, i, rt.host.kept_parts)
                if result.error is not None:
                    raise SnapshotError("replaying the message log did not repeat its results")
        self._rt = rt

    # ----------------------------------------------------------- snapshots

    def footprint(self) -> int:
        log_bytes = sum(len(m) + len(e) for m, e in self._log)
        return self._rt.lua.get_memory_used(total=True) + len(self._base) + log_bytes

    def snapshot(self) -> bytes:
        header = _dumps(
            {
                "format": LUA_NATIVE_FORMAT,
                "digest": self._digest,
                "log": len(self._log),
                "work": self._work,
                "compact_at": self._compact_at,
            }
        )
        parts = [_MAGIC, struct.pack(">I", len(header)), header, struct.pack(">Q", len(self._base)), self._base]
        for call, env_json in self._log:
            msg_json = call[1] if call[0] == b"j" else _dumps(_unflatten(call))
            parts += [struct.pack(">II", len(msg_json), len(env_json)), msg_json, env_json]
        return b"".join(parts)

    def restore(self, data: bytes) -> None:
        header, base, log = self._parse(data)
        calls = []
        for msg_json, env_json in log:
            flat = _flatten(json.loads(msg_json))
            calls.append((flat if flat is not None else (b"j", msg_json), env_json))
        self._base, self._log = base, calls
        self._rebuild()
        self._work, self._compact_at = header["work"], header["compact_at"]

    def _parse(self, data: bytes) -> tuple[dict, bytes, list[tuple[bytes, bytes]]]:
        try:
            if not data.startswith(_MAGIC):
                raise ValueError("not a pyao Lua snapshot")
            pos = len(_MAGIC)
            (hlen,) = struct.unpack_from(">I", data, pos)
            header = json.loads(data[pos + 4 : pos + 4 + hlen])
            pos += 4 + hlen
            (blen,) = struct.unpack_from(">Q", data, pos)
            base = data[pos + 8 : pos + 8 + blen]
            pos += 8 + blen
            log = []
            for _ in range(int(header["log"])):
                mlen, elen = struct.unpack_from(">II", data, pos)
                pos += 8
                log.append((data[pos : pos + mlen], data[pos + mlen : pos + mlen + elen]))
                pos += mlen + elen
            if pos != len(data) or len(base) != blen:
                raise ValueError("truncated or trailing bytes")
            if not all(type(header[k]) is int and header[k] >= 0 for k in ("work", "compact_at")):
                raise ValueError("bad compaction counters")
            for msg_json, _env_json in log:
                json.loads(msg_json)
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise SnapshotError(f"damaged snapshot: {exc}") from None
        if header.get("digest") != self._digest:
            raise SnapshotError("snapshot was made for another module or library version")
        return header, base, log


def _compact_threshold(base_len: int) -> int:
    return COMPACT_RATIO * (SERIALISE_WORK + WORK_PER_STATE_BYTE * base_len)


class LuaVM(VM):
    """The native Lua VM (``Module-Format: lua53-pyao-native-1``)."""

    formats = (LUA_NATIVE_FORMAT,)

    def __init__(self, compact_every: int | None = None, devices: Devices | None = None) -> None:
        self.compact_every = compact_every
        self.devices: Devices = devices or {}

    def instantiate(self, module: ModuleSource, process: ProcessContext, limits: Limits) -> LuaProcess:
        return LuaProcess(module, process, limits, compact_every=self.compact_every, devices=self.devices)
