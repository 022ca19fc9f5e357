"""The host side of the emscripten ABI that aos modules import (``env`` and ``wasi_snapshot_preview1``).

Contract
--------
* Assumes: a compiled module built by emscripten (aos: wasm32 ``emscripten4`` or
  wasm64) or by our C kit (wasi-libc reactor or freestanding). Imports are matched
  by name; their types come from the module itself, so 32- and 64-bit builds and
  any ``invoke_<sig>`` trampoline are served by the same code.
* Produces: one wasmtime ``Func`` per import, bound to one store and instance.
* Side effects: none outside the instance. No import reads the wall clock, host
  entropy, the environment or files: the clock and random bytes come from the
  message being evaluated (``MessageInputs``), stdout/stderr are dropped, the
  file system is empty, and WeaveDrive reads go to the ``weavedrive@1.0`` device.
  ``pyao.device_call`` reaches the unit's ``ProcessDevice``s (``llm@1.0``; see
  ``_devices``), charging their cost to the message's fuel.

Errors inside the module
------------------------
* ``_emscripten_throw_longjmp`` raises ``LongJump``; the nearest ``invoke_*``
  trampoline catches it, restores the stack pointer and calls ``setThrew(1, 0)``,
  exactly as the JS glue does, so Lua ``error``/``pcall`` work.
* ``exit``, ``abort``, an unknown import, a refused WeaveDrive file: ``HostAbort``,
  which ends the message with an ``Error`` result.
"""

from __future__ import annotations

import calendar
import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime

from pyao.abc import DriveFile, FileDrive, ProcessContext
from pyao.errors import DeviceError, NotFound
from pyao.vm.wasm._devices import IMPORT_MODULE, IMPORT_NAME, MAX_NAME_BYTES, MAX_REQUEST_BYTES, DeviceDoor
from pyao.vm.wasm._memory import WASM_PAGE, LinearMemory

WEAVEDRIVE = "weavedrive@1.0"
#: WASI errno values (emscripten uses the same numbers)
EBADF, EINVAL, ENOENT, ENOSYS, ENOTTY, ERANGE, ESPIPE = 8, 28, 44, 52, 59, 68, 70
#: emscripten's heap cap by pointer width (the JS glue's getHeapMax)
HEAP_MAX = {False: 4 * 1024**3, True: 16 * 1024**3}
#: first fd handed out for WeaveDrive files (below it: stdin/out/err and libc's own)
FIRST_DRIVE_FD = 100
#: the official glue's Asyncify.StackSize: the unwind buffer each async import call mallocs
ASYNCIFY_STACK_SIZE = 40 * 1024 * 1024
#: where the official glue's deterministic ``Date.now`` starts
GLUE_CLOCK_START = 10_000


class LongJump(Exception):
    """``longjmp`` in flight (emscripten's ``throw Infinity``)."""


class HostAbort(Exception):
    """The module asked to stop (exit, abort) or used something the host refuses; the message fails."""


@dataclass
class MessageInputs:
    """What the deterministic imports derive from the message being evaluated."""

    timestamp_ms: int = 0
    seed: bytes = b""
    msg: dict = field(default_factory=dict)
    clock_calls: int = 0
    random_counter: int = 0

    @classmethod
    def of(cls, msg: dict) -> MessageInputs:
        try:
            ts = int(msg.get("Timestamp") or 0)
        except (TypeError, ValueError):
            ts = 0
        key = "\0".join(str(msg.get(k, "")) for k in ("Id", "Timestamp", "Nonce", "Hash-Chain", "Block-Height"))
        return cls(timestamp_ms=ts, seed=hashlib.sha256(b"pyao-wasm-seed\0" + key.encode()).digest(), msg=msg)

    def now_ms(self) -> float:
        """The JS glue's deterministic clock (``Date.now``: 10000, 10001, ...), restarted for every
        message so it depends on nothing but the message. aos reads the time through
        ``msg.Timestamp``; C ``time()`` feeds Lua's string-hash seed when the Lua state boots in
        the first message, and the same clock as the official loader gives the same table order."""
        self.clock_calls += 1
        return float(GLUE_CLOCK_START + self.clock_calls - 1)

    def random(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            out += hashlib.sha256(self.seed + self.random_counter.to_bytes(8, "little")).digest()
            self.random_counter += 1
        return bytes(out[:n])


@dataclass
class _OpenFile:
    file: DriveFile
    position: int = 0


class EmscriptenHost:
    """The imports of one instance. ``bind`` must be called once the instance exists."""

    def __init__(
        self,
        store: wasmtime.Store,
        process: ProcessContext,
        drive: FileDrive | None,
        gas_used: Callable[[], int],
        door: DeviceDoor | None = None,
    ) -> None:
        self.store = store
        self.process = process
        self.drive = drive
        self.door = door
        self.gas_used = gas_used
        self.inputs = MessageInputs()
        self.mem: LinearMemory | None = None
        self._exports: dict[str, Any] = {}
        self._files: dict[int, _OpenFile] = {}
        self._next_fd = FIRST_DRIVE_FD

    # ------------------------------------------------------------ wiring

    def imports(self, module: wasmtime.Module) -> list[wasmtime.Func]:
        """One Func per import of ``module``, in import order."""
        out = []
        for imp in module.imports:
            ty = imp.type
            if not isinstance(ty, wasmtime.FuncType):
                raise HostAbort(f"the module imports a {type(ty).__name__} {imp.module}.{imp.name}; only functions")
            out.append(wasmtime.Func(self.store, ty, self._implementation(imp.module, imp.name or "", ty)))
        return out

    def bind(self, instance: wasmtime.Instance) -> None:
        exports = instance.exports(self.store)
        self._exports = {name: exports[name] for name in _WANTED_EXPORTS if name in exports}
        memory = exports.get("memory")
        if not isinstance(memory, wasmtime.Memory):
            raise HostAbort("the module exports no memory")
        self.mem = LinearMemory(self.store, memory)

    def begin(self, msg: dict) -> None:
        """Derive the clock and random imports from ``msg``, for the call that follows."""
        self.inputs = MessageInputs.of(msg)

    def _implementation(self, module: str, name: str, ty: wasmtime.FuncType) -> Callable[..., Any]:
        if module == "env" and name.startswith("invoke_"):
            return self._invoke(ty)
        method = _METHOD.get((module, name))
        if method is not None:
            return _unsigned_i32_args(getattr(self, method), ty)

        def missing(*_args: Any) -> Any:
            raise HostAbort(f"the module called {module}.{name}, which this host does not provide")

        return missing

    # ------------------------------------------------------------ setjmp/longjmp

    def _invoke(self, ty: wasmtime.FuncType) -> Callable[..., Any]:
        results = list(ty.results)
        zero = _zero(results[0]) if results else None

        def invoke(index: int, *args: Any) -> Any:
            save, restore, set_threw, table = self._trampoline_exports()
            sp = save(self.store)
            target = table.get(self.store, int(index))
            if not isinstance(target, wasmtime.Func):
                raise HostAbort(f"invoke of an empty table slot {index}")
            try:
                return target(self.store, *args)
            except LongJump:
                restore(self.store, sp)
                set_threw(self.store, 1, 0)
                return zero

        return invoke

    def _trampoline_exports(self) -> tuple[Any, Any, Any, Any]:
        ex = self._exports
        save = ex.get("emscripten_stack_get_current") or ex.get("stackSave")
        restore = ex.get("_emscripten_stack_restore") or ex.get("stackRestore")
        found = (save, restore, ex.get("setThrew"), ex.get("__indirect_function_table"))
        if any(f is None for f in found):
            raise HostAbort("the module imports invoke_* but lacks the stack, setThrew or table exports it needs")
        return found

    def throw_longjmp(self) -> None:
        raise LongJump()

    # ------------------------------------------------------------ process control

    def exit(self, code: int) -> None:
        raise HostAbort(f"the module called exit({code})")

    def abort(self, *_args: Any) -> None:
        raise HostAbort("the module aborted")

    def assert_fail(self, cond: int, file: int, line: int, func: int) -> None:
        what = self._str(cond)
        raise HostAbort(f"assertion failed: {what} ({self._str(file)}:{line})")

    def _str(self, ptr: int) -> str:
        try:
            return self._m.cstring(ptr, 4096).decode(errors="replace")
        except Exception:
            return "?"

    @property
    def _m(self) -> LinearMemory:
        assert self.mem is not None, "bind() first"
        return self.mem

    # ------------------------------------------------------------ memory

    def memcpy(self, dest: int, src: int, num: int) -> None:
        self._m.copy_within(dest, src, num)

    def resize_heap(self, requested: int) -> int:
        """emscripten_resize_heap: grow with the glue's over-growth policy; 0 when no size fits."""
        mem = self._m
        old = mem.size()
        heap_max = min(HEAP_MAX[mem.is_64], self._declared_max())
        if requested > heap_max:
            return 0
        cut = 1
        while cut <= 4:
            over = min(int(old * (1 + 0.2 / cut)), requested + 100663296)
            new = min(heap_max, _align(max(requested, over), WASM_PAGE))
            try:
                mem.memory.grow(self.store, (new - old + WASM_PAGE - 1) // WASM_PAGE)
                return 1
            except wasmtime.WasmtimeError:
                cut *= 2
        return 0

    def _declared_max(self) -> int:
        maximum = self._m.memory.type(self.store).limits.max
        return HEAP_MAX[self._m.is_64] if maximum is None else maximum * WASM_PAGE

    def heap_max(self) -> int:
        return min(HEAP_MAX[self._m.is_64], self._declared_max())

    # ------------------------------------------------------------ time and randomness

    def date_now(self) -> float:
        return self.inputs.now_ms()

    def get_now(self) -> float:
        return self.inputs.now_ms()

    def now_is_monotonic(self) -> int:
        return 1

    def clock_time_get(self, _clock_id: int, _precision: int, out: int) -> int:
        self._m.set_u64(out, int(self.inputs.now_ms()) * 1_000_000)
        return 0

    def random_get(self, buf: int, length: int) -> int:
        self._m.write(buf, self.inputs.random(length))
        return 0

    def gmtime(self, t: int, tm: int) -> None:
        self._write_tm(tm, time.gmtime(_clamp_time(t)))

    def localtime(self, t: int, tm: int) -> None:
        """Local time is UTC on every CU (a host's time zone must not change results)."""
        self._write_tm(tm, time.gmtime(_clamp_time(t)))
        self._m.set_i32(tm + 32, 0)  # tm_isdst
        if self._m.is_64:
            self._m.set_u64(tm + 40, 0)  # tm_gmtoff
        else:
            self._m.set_i32(tm + 36, 0)

    def mktime(self, tm: int) -> int:
        sec, mn, hour, mday, mon, year = (self._m.i32(tm + 4 * i) for i in range(6))
        year += 1900 + mon // 12
        mon %= 12
        try:
            t = calendar.timegm((year, mon + 1, 1, 0, 0, 0)) + (mday - 1) * 86400 + hour * 3600 + mn * 60 + sec
            self._write_tm(tm, time.gmtime(t))
        except (OverflowError, ValueError):
            return -1
        self._m.set_i32(tm + 32, 0)
        return t

    def tzset(self, timezone: int, daylight: int, std_name: int, dst_name: int) -> None:
        if self._m.is_64:
            self._m.set_u64(timezone, 0)
        else:
            self._m.set_i32(timezone, 0)
        self._m.set_i32(daylight, 0)
        self._m.write(std_name, b"UTC\0")
        self._m.write(dst_name, b"UTC\0")

    def _write_tm(self, tm: int, st: time.struct_time) -> None:
        fields = (st.tm_sec, st.tm_min, st.tm_hour, st.tm_mday, st.tm_mon - 1, st.tm_year - 1900,
                  (st.tm_wday + 1) % 7, st.tm_yday - 1)  # fmt: skip
        self._m.write(tm, struct.pack("<8i", *fields))

    def strftime(self, s: int, maxsize: int, fmt: int, tm: int) -> int:
        sec, mn, hour, mday, mon, year, wday, yday = struct.unpack("<8i", self._m.read(tm, 32))
        text = _strftime(self._m.cstring(fmt, 4096).decode(errors="replace"),
                         sec, mn, hour, mday, mon, year + 1900, wday, yday).encode()  # fmt: skip
        if len(text) + 1 > maxsize:
            return 0
        self._m.write(s, text + b"\0")
        return len(text)

    def strftime_l(self, s: int, maxsize: int, fmt: int, tm: int, _locale: int) -> int:
        return self.strftime(s, maxsize, fmt, tm)

    # ------------------------------------------------------------ wasi: files and environment

    def fd_write(self, fd: int, iov: int, iovcnt: int, pnum: int) -> int:
        """stdout/stderr are dropped (aos's print goes to Output through Lua, not here)."""
        if fd not in (1, 2):
            return EBADF
        total = 0
        step = 2 * self._m.ptr_size
        for i in range(iovcnt):
            total += self._m.ptr(iov + i * step + self._m.ptr_size)
        self._m.set_ptr(pnum, total)
        return 0

    def fd_read(self, fd: int, iov: int, iovcnt: int, pnum: int) -> int:
        opened = self._files.get(fd)
        total = 0
        if opened is not None:
            step = 2 * self._m.ptr_size
            for i in range(iovcnt):
                buf, length = self._m.ptr(iov + i * step), self._m.ptr(iov + i * step + self._m.ptr_size)
                got = self._drive_read(opened, buf, length)
                total += got
                if got < length:
                    break
        self._m.set_ptr(pnum, total)
        return 0

    def fd_close(self, fd: int) -> int:
        self._close(fd)
        return 0

    def fd_seek(self, fd: int, offset: int, whence: int, out: int) -> int:
        opened = self._files.get(fd)
        if opened is None:
            return ESPIPE
        base = {0: 0, 1: opened.position, 2: opened.file.size}.get(whence)
        if base is None or base + offset < 0:
            return EINVAL
        opened.position = base + offset
        self._m.set_u64(out, opened.position)
        return 0

    def fd_fdstat_get(self, fd: int, out: int) -> int:
        return EBADF

    def fd_sync(self, fd: int) -> int:
        return 0

    def fd_prestat_get(self, fd: int, out: int) -> int:
        return EBADF  # no preopened directories: the module sees no file system

    def fd_prestat_dir_name(self, fd: int, path: int, length: int) -> int:
        return EBADF

    def sizes_get(self, count: int, size: int) -> int:
        """environ_sizes_get / args_sizes_get: nothing."""
        self._m.set_ptr(count, 0)
        self._m.set_ptr(size, 0)
        return 0

    def strings_get(self, _ptrs: int, _buf: int) -> int:
        return 0

    def proc_exit(self, code: int) -> None:
        raise HostAbort(f"the module exited with status {code}")

    def syscall_enoent(self, *_args: Any) -> int:
        return -ENOENT

    def syscall_enosys(self, *_args: Any) -> int:
        return -ENOSYS

    def syscall_ioctl(self, *_args: Any) -> int:
        return -ENOTTY

    def syscall_fcntl(self, *_args: Any) -> int:
        return 0

    def getcwd(self, buf: int, size: int) -> int:
        """The working directory is ``/`` (emscripten's FS starts there); returns bytes written with the NUL."""
        if size == 0:
            return -EINVAL
        if size < 2:
            return -ERANGE
        self._m.write(buf, b"/\0")
        return 2

    def munmap(self, *_args: Any) -> int:
        return -EBADF  # no file is ever mapped

    def system(self, command: int) -> int:
        return 0 if command == 0 else -1  # no shell

    def metering_gas_used(self) -> int:
        return min(self.gas_used(), 0x7FFFFFFF)

    # ------------------------------------------------------------ devices (pyao.device_call)

    def device_call(self, name: int, name_len: int, req: int, req_len: int, out: int, out_cap: int) -> int:
        if self.door is None:
            raise HostAbort("the module called pyao.device_call, but this unit gives it no devices")
        if name_len > MAX_NAME_BYTES or req_len > MAX_REQUEST_BYTES:
            raise HostAbort("pyao.device_call: the device name or the request is too long")
        self._m._base(out, out_cap)  # check the answer buffer before asking the device
        answer = self.door.call(self._m.read(name, name_len), self._m.read(req, req_len), self.inputs.msg,
                                self.store.get_fuel(), out_cap, self._charge)  # fmt: skip
        if isinstance(answer, int):
            return answer
        self._m.write(out, answer)
        return len(answer)

    def _charge(self, cost: int) -> None:
        self.store.set_fuel(max(0, self.store.get_fuel() - max(0, int(cost))))

    # ------------------------------------------------------------ WeaveDrive

    # The official glue runs these imports through Asyncify: each call mallocs a 40 MiB unwind
    # buffer, unwinds, awaits, rewinds and frees it. The malloc grows the heap and moves later
    # allocations (and so the addresses that seed Lua's string hashes), so it is done here too for
    # modules built with Asyncify, around the synchronous work.

    def weavedrive_open(self, filename: int, mode: int) -> int:
        return self._as_async(self._open, filename, mode)

    def weavedrive_read(self, fd: int, dst: int, length: int) -> int:
        return self._as_async(self._read, fd, dst, length)

    def weavedrive_close(self, fd: int) -> int:
        return self._as_async(self._close_import, fd)

    def _as_async(self, fn: Callable[..., int], *args: Any) -> int:
        malloc, free = self._exports.get("malloc"), self._exports.get("free")
        if malloc is None or free is None or "asyncify_start_unwind" not in self._exports:
            return fn(*args)
        header = 24 if self._m.is_64 else 12  # two pointers and the rewind id, as the glue lays it out
        ptr = malloc(self.store, header + ASYNCIFY_STACK_SIZE) & (2 ** (8 * self._m.ptr_size) - 1)
        if ptr:
            self._m.set_ptr(ptr, ptr + header)
            self._m.set_ptr(ptr + self._m.ptr_size, ptr + header + ASYNCIFY_STACK_SIZE)
        try:
            return fn(*args)
        finally:
            if ptr:
                free(self.store, ptr)

    def _open(self, filename: int, _mode: int) -> int:
        path = self._m.cstring(filename, 4096).decode(errors="replace")
        if path.split("/")[1:2] not in (["data"], ["tx"], ["block"]):
            return 0  # not a drive path (Lua's require probing its search path): fopen gives NULL
        if self.drive is None:
            raise HostAbort(f"WeaveDrive is not available on this unit ({WEAVEDRIVE} device missing): {path}")
        try:
            opened = self.drive.open(path, self.process, self.inputs.msg)
        except NotFound:
            raise HostAbort(f"HALT: FILE NOT FOUND: {path}") from None
        except DeviceError as exc:
            raise HostAbort(f"HALT: WeaveDrive refused {path}: {exc}") from None
        fd = self._next_fd
        self._next_fd += 1
        self._files[fd] = _OpenFile(opened)
        return fd

    def _read(self, fd: int, dst: int, length: int) -> int:
        opened = self._files.get(fd)
        if opened is None:
            raise HostAbort(f"WeaveDrive read of a file that is not open (fd {fd})")
        return self._drive_read(opened, dst, length)

    def _close_import(self, fd: int) -> int:
        self._close(fd)
        return 0

    def _drive_read(self, opened: _OpenFile, dst: int, length: int) -> int:
        self._m._base(dst, length)  # check the destination before asking the device
        try:
            data = opened.file.read(opened.position, length)
        except DeviceError as exc:
            raise HostAbort(f"WeaveDrive read failed: {exc}") from None
        data = data[:length]
        self._m.write(dst, data)
        opened.position += len(data)
        return len(data)

    def _close(self, fd: int) -> None:
        opened = self._files.pop(fd, None)
        if opened is not None:
            opened.file.close()

    def close_files(self) -> None:
        for fd in list(self._files):
            self._close(fd)


_WANTED_EXPORTS = ("__indirect_function_table", "emscripten_stack_get_current", "_emscripten_stack_restore",
                   "stackSave", "stackRestore", "setThrew", "malloc", "free", "asyncify_start_unwind")  # fmt: skip

#: (import module, name) -> EmscriptenHost method
_METHOD: dict[tuple[str, str], str] = {
    ("env", "_emscripten_throw_longjmp"): "throw_longjmp",
    ("env", "emscripten_longjmp"): "throw_longjmp",
    ("env", "exit"): "exit",
    ("env", "_abort_js"): "abort",
    ("env", "abort"): "abort",
    ("env", "__assert_fail"): "assert_fail",
    ("env", "_emscripten_memcpy_js"): "memcpy",
    ("env", "emscripten_memcpy_big"): "memcpy",
    ("env", "emscripten_resize_heap"): "resize_heap",
    ("env", "emscripten_get_heap_max"): "heap_max",
    ("env", "emscripten_date_now"): "date_now",
    ("env", "_emscripten_date_now"): "date_now",
    ("env", "emscripten_get_now"): "get_now",
    ("env", "_emscripten_get_now_is_monotonic"): "now_is_monotonic",
    ("env", "_gmtime_js"): "gmtime",
    ("env", "_localtime_js"): "localtime",
    ("env", "_mktime_js"): "mktime",
    ("env", "_tzset_js"): "tzset",
    ("env", "strftime"): "strftime",
    ("env", "strftime_l"): "strftime_l",
    ("env", "__syscall_openat"): "syscall_enoent",
    ("env", "__syscall_unlinkat"): "syscall_enoent",
    ("env", "__syscall_rmdir"): "syscall_enoent",
    ("env", "__syscall_renameat"): "syscall_enoent",
    ("env", "__syscall_readlinkat"): "syscall_enoent",
    ("env", "__syscall_stat64"): "syscall_enoent",
    ("env", "__syscall_lstat64"): "syscall_enoent",
    ("env", "__syscall_newfstatat"): "syscall_enoent",
    ("env", "__syscall_faccessat"): "syscall_enoent",
    ("env", "__syscall_mkdirat"): "syscall_enosys",
    ("env", "__syscall_dup3"): "syscall_enosys",
    ("env", "__syscall_getcwd"): "getcwd",
    ("env", "_munmap_js"): "munmap",
    ("env", "__syscall_fstat64"): "syscall_enosys",
    ("env", "__syscall_ftruncate64"): "syscall_enosys",
    ("env", "__syscall_chmod"): "syscall_enosys",
    ("env", "__syscall_fchmod"): "syscall_enosys",
    ("env", "__syscall_fchown32"): "syscall_enosys",
    ("env", "__syscall_utimensat"): "syscall_enosys",
    ("env", "__syscall_ioctl"): "syscall_ioctl",
    ("env", "__syscall_fcntl64"): "syscall_fcntl",
    ("env", "_emscripten_system"): "system",
    ("env", "metering_gasUsed"): "metering_gas_used",
    ("env", "__asyncjs__weavedrive_open"): "weavedrive_open",
    ("env", "__asyncjs__weavedrive_read"): "weavedrive_read",
    ("env", "__asyncjs__weavedrive_close"): "weavedrive_close",
    ("env", "weavedrive_open"): "weavedrive_open",
    ("env", "weavedrive_read"): "weavedrive_read",
    ("env", "weavedrive_close"): "weavedrive_close",
    (IMPORT_MODULE, IMPORT_NAME): "device_call",
    ("wasi_snapshot_preview1", "fd_write"): "fd_write",
    ("wasi_snapshot_preview1", "fd_read"): "fd_read",
    ("wasi_snapshot_preview1", "fd_close"): "fd_close",
    ("wasi_snapshot_preview1", "fd_seek"): "fd_seek",
    ("wasi_snapshot_preview1", "fd_sync"): "fd_sync",
    ("wasi_snapshot_preview1", "fd_fdstat_get"): "fd_fdstat_get",
    ("wasi_snapshot_preview1", "fd_prestat_get"): "fd_prestat_get",
    ("wasi_snapshot_preview1", "fd_prestat_dir_name"): "fd_prestat_dir_name",
    ("wasi_snapshot_preview1", "environ_sizes_get"): "sizes_get",
    ("wasi_snapshot_preview1", "environ_get"): "strings_get",
    ("wasi_snapshot_preview1", "args_sizes_get"): "sizes_get",
    ("wasi_snapshot_preview1", "args_get"): "strings_get",
    ("wasi_snapshot_preview1", "clock_time_get"): "clock_time_get",
    ("wasi_snapshot_preview1", "random_get"): "random_get",
    ("wasi_snapshot_preview1", "proc_exit"): "proc_exit",
}


def _unsigned_i32_args(fn: Callable[..., Any], ty: wasmtime.FuncType) -> Callable[..., Any]:
    """``fn`` seeing i32 arguments as unsigned: wasm32 pointers and sizes above 2 GiB arrive negative."""
    positions = [i for i, p in enumerate(ty.params) if str(p) == "i32"]
    if not positions:
        return fn

    def wrapped(*args: Any) -> Any:
        fixed = list(args)
        for i in positions:
            fixed[i] &= 0xFFFFFFFF
        return fn(*fixed)

    return wrapped


def _zero(ty: wasmtime.ValType) -> Any:
    return 0.0 if str(ty) in ("f32", "f64") else 0


def _align(x: int, multiple: int) -> int:
    return x + (multiple - x % multiple) % multiple


def _clamp_time(t: int) -> int:
    return max(-(2**40), min(2**40, t))


_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")  # fmt: skip


def _strftime(fmt: str, sec: int, mn: int, hour: int, mday: int, mon: int, year: int, wday: int, yday: int) -> str:
    """C-locale strftime in UTC, computed here (not by the host's libc or locale)."""
    day, month = _DAYS[wday % 7], _MONTHS[mon % 12]
    h12 = (hour % 12) or 12
    table = {
        "a": day[:3], "A": day, "b": month[:3], "h": month[:3], "B": month, "C": f"{year // 100:02d}",
        "d": f"{mday:02d}", "e": f"{mday:2d}", "H": f"{hour:02d}", "I": f"{h12:02d}", "j": f"{yday + 1:03d}",
        "m": f"{mon + 1:02d}", "M": f"{mn:02d}", "n": "\n", "p": "AM" if hour < 12 else "PM", "S": f"{sec:02d}",
        "t": "\t", "u": str(wday or 7), "w": str(wday), "y": f"{year % 100:02d}", "Y": str(year), "Z": "UTC",
        "z": "+0000", "%": "%",
        "D": f"{mon + 1:02d}/{mday:02d}/{year % 100:02d}", "F": f"{year}-{mon + 1:02d}-{mday:02d}",
        "T": f"{hour:02d}:{mn:02d}:{sec:02d}", "R": f"{hour:02d}:{mn:02d}", "r": f"{h12:02d}:{mn:02d}:{sec:02d} "
        + ("AM" if hour < 12 else "PM"),
        "c": f"{day[:3]} {month[:3]} {mday:2d} {hour:02d}:{mn:02d}:{sec:02d} {year}",
        "x": f"{mon + 1:02d}/{mday:02d}/{year % 100:02d}", "X": f"{hour:02d}:{mn:02d}:{sec:02d}",
    }  # fmt: skip
    out, i = [], 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            spec = fmt[i + 1]
            if spec in ("E", "O") and i + 2 < len(fmt):  # locale modifiers: ignored in the C locale
                i += 1
                spec = fmt[i + 1]
            out.append(table.get(spec, "%" + spec))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)
