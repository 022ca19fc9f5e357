"""The emscripten host imports (pyao.vm.wasm._abi) against small WAT modules and the kit: bad
pointers, unknown imports, longjmp without setjmp, and the UTC time functions."""

from __future__ import annotations

import struct

import pytest
import wasmtime

from pyao.abc import Limits, ModuleSource
from pyao.errors import ModuleError
from pyao.vm import WasmVM
from pyao.vm.wasm._abi import _strftime
from tests.unit._wasm import ENV, W32, context, make, msg

# handle(msg, env) calls the import given by IMPORT with garbage, then returns a valid reply
_WAT = """
(module
  (import "{module}" "{name}" (func $f {params} {results}))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{{\\22ok\\22:true,\\22response\\22:{{\\22Output\\22:\\22fine\\22}}}}\\00")
  (func (export "malloc") (param i32) (result i32) (i32.const 2048))
  (func (export "free") (param i32))
  (func (export "handle") (param i32 i32) (result i32)
    {call}
    (i32.const 1024)))
"""


def _module(module: str, name: str, params: str, results: str, call: str) -> ModuleSource:
    wat = _WAT.format(module=module, name=name, params=params, results=results, call=call)
    return ModuleSource("M" * 43, "O" * 43, (("Module-Format", W32),), wasmtime.wat2wasm(wat))


def _run(source: ModuleSource):
    p = WasmVM().instantiate(source, context(), Limits(compute=10**6, memory=1 << 20))
    return p.handle(msg("Go"), ENV)


def test_a_plain_module_replies():
    r = _run(_module("env", "emscripten_date_now", "", "(result f64)", "(drop (call $f))"))
    assert r.ok and r.output == "fine"


@pytest.mark.parametrize(
    ("module", "name", "params", "results", "call"),
    [
        ("wasi_snapshot_preview1", "fd_write", "(param i32 i32 i32 i32)", "(result i32)",
         "(drop (call $f (i32.const 1) (i32.const 65530) (i32.const 4) (i32.const 0)))"),
        ("env", "_emscripten_memcpy_js", "(param i32 i32 i32)", "",
         "(call $f (i32.const 0) (i32.const 100) (i32.const -1))"),
        ("env", "_gmtime_js", "(param i64 i32)", "", "(call $f (i64.const 0) (i32.const 65534))"),
        ("env", "strftime", "(param i32 i32 i32 i32)", "(result i32)",
         "(drop (call $f (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 65530)))"),
    ],
)  # fmt: skip
def test_bad_pointers_are_an_error_not_a_crash(module, name, params, results, call):
    r = _run(_module(module, name, params, results, call))
    assert "bad address" in r.error or "unterminated" in r.error


def test_an_unknown_import_fails_only_when_called():
    r = _run(_module("env", "launch_missiles", "", "", "(call $f)"))
    assert "env.launch_missiles" in r.error and "does not provide" in r.error


def test_longjmp_without_setjmp_and_exit_are_errors():
    assert "longjmp" in _run(_module("env", "_emscripten_throw_longjmp", "", "", "(call $f)")).error
    assert "exit(3)" in _run(_module("env", "exit", "(param i32)", "", "(call $f (i32.const 3))")).error


def test_a_module_importing_memory_is_refused():
    wat = (
        '(module (import "env" "memory" (memory 1)) (func (export "handle") (param i32 i32) (result i32) i32.const 0))'
    )

    with pytest.raises(ModuleError):
        WasmVM().instantiate(ModuleSource("M" * 43, "O" * 43, (("Module-Format", W32),), wasmtime.wat2wasm(wat)),
                             context(), Limits(10**6, 1 << 20))  # fmt: skip


def test_time_functions_are_utc_and_deterministic():
    host = make("echo")._rt.host  # a bound host over the kit module's memory
    tm = 4096
    host.gmtime(1_700_000_000, tm)  # 2023-11-14 22:13:20 UTC, a Tuesday
    fields = struct.unpack("<8i", host.mem.read(tm, 32))
    assert fields == (20, 13, 22, 14, 10, 123, 2, 317)
    host.mem.write(8192, b"%Y-%m-%d %H:%M:%S %a %j %Z\0")
    assert host.strftime(12288, 64, 8192, tm) == len("2023-11-14 22:13:20 Tue 318 UTC")
    assert host.mem.cstring(12288) == b"2023-11-14 22:13:20 Tue 318 UTC"
    assert host.strftime(12288, 5, 8192, tm) == 0  # does not fit
    host.mem.write(tm, struct.pack("<6i", 0, 0, 0, 32, 0, 124))  # 32 January 2024 -> 1 February
    assert host.mktime(tm) == 1_706_745_600
    assert struct.unpack("<8i", host.mem.read(tm, 32))[3:5] == (1, 1)
    assert _strftime("%c|%D|%e|%p|%%|%Q", 5, 4, 13, 7, 0, 2024, 0, 6) == "Sun Jan  7 13:04:05 2024|01/07/24| 7|PM|%|%Q"
