import pytest

from pyao.errors import ModuleError, UnknownModuleFormat, VMError
from pyao.vm import LUA_NATIVE_FORMAT, VMS, LuaVM, limits_for, parse_memory, vm_for


def test_registry_knows_native_lua():
    assert VMS[LUA_NATIVE_FORMAT] is LuaVM
    assert isinstance(vm_for(LUA_NATIVE_FORMAT), LuaVM)


def test_unknown_format_lists_known_ones():
    with pytest.raises(UnknownModuleFormat) as info:
        vm_for("wasm99-unknown")
    assert isinstance(info.value, VMError)
    assert LUA_NATIVE_FORMAT in str(info.value)
    assert info.value.known == sorted(VMS)


@pytest.mark.parametrize(
    ("text", "size"), [("1-gb", 1 << 30), ("512-mb", 512 << 20), ("16-gb", 16 << 30), ("65536", 65536), ("4kb", 4096)]
)
def test_memory_limit_values(text, size):
    assert parse_memory(text) == size


def test_bad_memory_limit():
    with pytest.raises(ModuleError):
        parse_memory("lots")


def test_process_tag_overrides_module_tag_and_maximum_is_refused():
    module = [("Memory-Limit", "1-gb"), ("Compute-Limit", "1000")]
    limits = limits_for(module, [("Memory-Limit", "512-mb")], max_compute=10**6, max_memory=1 << 30)
    assert (limits.memory, limits.compute) == (512 << 20, 1000)
    assert limits_for([], [], max_compute=7, max_memory=9).compute == 7
    with pytest.raises(ModuleError):
        limits_for(module, [("Memory-Limit", "16-gb")], max_compute=10**6, max_memory=1 << 30)
