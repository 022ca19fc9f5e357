"""``io.open`` in the native Lua VM on weavedrive@1.0, against a real gateway on loopback."""

from __future__ import annotations

import pytest

from pyao.abc import Limits, ModuleSource, ProcessContext
from pyao.devices import GatewayReader, WeaveDrive
from pyao.vm import LUA_NATIVE_FORMAT, _lua_io, vm_for
from tests._weavedrive import ATTESTOR, SCHEDULER, UPLOADER, attestation, gateway, item, sample_bytes
from tests.unit._lua import message

TEXT = b"first line\nsecond line\n\nfourth, no newline"
BIG = 3 * 1024 * 1024 + 123  # more than one host read (1 MiB) and several cache blocks


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    with gateway(tmp_path_factory.mktemp("wd-lua")) as gw:
        ids = {
            "text": gw.upload(item(TEXT)),
            "big": gw.upload(item(sample_bytes(BIG))),
            "secret": gw.upload(item(b"not for you")),
            "late": gw.upload(item(b"attested late")),
            "boot": gw.upload(item(b"BootRan = (BootRan or 0) + 1")),
            "empty": gw.upload(item(b"")),
        }
        for key in ("text", "big", "empty"):
            gw.upload(attestation(ids[key]))
        ids["module"] = gw.upload(
            item(b"", tags=[("Module-Format", LUA_NATIVE_FORMAT), ("Type", "Module"), ("Extension", "WeaveDrive")])
        )
        h = gw.mine()
        gw.upload(attestation(ids["late"]))
        gw.mine()
        drive = WeaveDrive(GatewayReader(gw.url), cache_bytes=1 << 20)
        yield gw, ids, h, drive
        drive.close()


class Proc:
    def __init__(self, net, *, tags=(), devices=True, source="", boot=True, compute=10**8):
        _gw, ids, self.height, drive = net
        self.ids = ids
        module = ModuleSource(
            id=ids["module"], owner=UPLOADER.address, tags=(("Module-Format", LUA_NATIVE_FORMAT),), data=source.encode()
        )
        self.tags = (
            ("Type", "Process"),
            ("Module", ids["module"]),
            ("Scheduler", SCHEDULER.address),
            ("Attestor", ATTESTOR.address),
            *tags,
        )
        vm = vm_for(LUA_NATIVE_FORMAT, {"weavedrive@1.0": drive} if devices else {})
        vm.compact_every = 1
        ctx = ProcessContext(id="P" * 43, owner=UPLOADER.address, tags=self.tags)
        self.instance = vm.instantiate(module, ctx, Limits(compute=compute, memory=64 << 20))
        self.env = {
            "Process": {"Id": ctx.id, "Owner": ctx.owner, "Tags": [{"name": n, "value": v} for n, v in self.tags]},
            "Module": {"Id": module.id, "Owner": module.owner, "Tags": []},
        }
        self.nonce = 0
        if boot:
            first = message(ctx.id, "", [{"name": "Type", "value": "Process"}], frm=UPLOADER.address)
            first["Block-Height"] = self.height
            assert self.instance.handle(first, self.env).error is None

    def eval(self, code: str, height: int | None = None):
        self.nonce += 1
        msg = message(
            f"m{self.nonce:03d}", code, [{"name": "Action", "value": "Eval"}], frm=UPLOADER.address, nonce=self.nonce
        )
        msg["Block-Height"] = self.height if height is None else height
        return self.instance.handle(msg, self.env)

    def value(self, code: str, height: int | None = None) -> str:
        r = self.eval(code, height)
        assert r.error is None, r.error
        return r.output["data"]

    def path(self, key: str) -> str:
        return f"/data/{self.ids[key]}"


@pytest.fixture
def p(net):
    return Proc(net)


def test_read_formats(p):
    path = p.path("text")
    assert p.value(f"local f = io.open('{path}'); local s = f:read('a'); f:close(); return s") == TEXT.decode()
    lines = p.value(
        f"local t = {{}} for l in io.open('{path}'):lines() do t[#t+1] = '[' .. l .. ']' end return table.concat(t)"
    )
    assert lines == "[first line][second line][][fourth, no newline]"
    assert p.value(f"local t = {{}} for l in io.lines('{path}') do t[#t+1] = l end return #t .. t[4]") == (
        "4fourth, no newline"
    )
    assert (
        p.value(
            f"local t = {{}} for a, b in io.lines('{path}', 3, 'l') do t[#t+1] = a .. '|' .. b end "
            "return table.concat(t, ',')"
        )
        == "fir|st line,sec|ond line,\nfo|urth, no newline"
    )
    assert p.value(f"local f = io.open('{path}', 'rb') return f:read('L') .. f:read('l')") == "first line\nsecond line"
    assert p.value(f"local f = io.open('{path}') return table.concat({{f:read(5, 1, '*l')}}, '|')") == "first| |line"
    assert p.value(f"return io.type(io.open('{path}'))") == "file"
    assert p.value(f"local f = io.open('{path}') f:close() return io.type(f) .. ' ' .. tostring(f)") == (
        "closed file file (closed)"
    )
    assert p.value(f"return io.type({{}}) == nil and io.open('{path}'):read(0) == ''")


def test_seek_and_reading_past_the_end(p):
    path, n = p.path("text"), len(TEXT)
    assert p.value(f"local f = io.open('{path}') return f:seek('end')") == str(n)
    assert p.value(f"local f = io.open('{path}') f:seek('set', 6) return f:read(4) .. f:seek()") == "line10"
    assert p.value(f"local f = io.open('{path}') f:seek('set', 6) f:seek('cur', 5) return f:read('l')") == "second line"
    assert p.value(f"local f = io.open('{path}') f:seek('end', -10) return f:read('a')") == TEXT[-10:].decode()
    # past the end: numbers and lines give nil, 'a' gives ""; the position may sit beyond the end
    past = f"local f = io.open('{path}') f:seek('set', {n + 100}) "
    assert p.value(past + "return tostring(f:read(1)) .. tostring(f:read('l')) .. '<' .. f:read('a') .. '>'") == (
        "nilnil<>"
    )
    assert p.value(f"local f = io.open('{path}') f:seek('set', {n - 3}) return f:read(100)") == TEXT[-3:].decode()
    assert p.value(f"local f = io.open('{path}') f:read('a') return tostring(f:read(0))") == "nil"
    assert p.value(
        f"return select('#', io.open('{path}'):seek('set', -1)) .. tostring(io.open('{path}'):seek('set', -1))"
    ) == ("3nil")
    assert p.value(f"return tostring(io.open('/data/{p.ids['empty']}'):read(1))") == "nil"
    r = p.eval(f"io.open('{path}'):seek('sideways')")
    assert "invalid option" in r.error


def test_large_reads_span_host_pieces(p):
    data = sample_bytes(BIG)
    path = p.path("big")
    assert p.value(f"local f = io.open('{path}') local s = f:read({BIG + 50}) return #s .. ' ' .. f:seek()") == (
        f"{BIG} {BIG}"
    )
    # a byte far in, compared with the source
    got = p.value(f"local f = io.open('{path}') f:seek('set', 2500000) return string.byte(f:read(1))")
    assert int(got) == data[2_500_000]
    # a checksum over 4 KiB random reads equals the one computed here
    offsets = [(i * 7919 * 4096) % (BIG - 4096) for i in range(40)]
    code = (
        f"local f = io.open('{path}') local acc = 0 for _, o in ipairs({{{','.join(map(str, offsets))}}}) do "
        "f:seek('set', o) local s = f:read(4096) acc = (acc + string.byte(s, 1) * 3 + string.byte(s, 4096)) % 1000003 "
        "end return acc"
    )
    expect = 0
    for o in offsets:
        expect = (expect + data[o] * 3 + data[o + 4095]) % 1000003
    assert p.value(code) == str(expect)


def test_refused_files_are_errors_and_change_nothing(p):
    p.value("Counter = 1")
    r = p.eval(f"Counter = 2; local f = io.open('{p.path('secret')}'); Leak = f:read('a')")
    assert r.error is not None and "not admissible" in r.error and "not for you" not in str(r)
    assert p.value("return tostring(Counter) .. tostring(Leak)") == "1nil"
    for code, why in [
        ("io.open('/etc/passwd')", "not a WeaveDrive path"),
        ("io.open('../data/x')", "not a WeaveDrive path"),
        (f"io.open('{p.path('text')}', 'w')", "read-only"),
        (f"io.open('{p.path('text')}'):write('x')", "read-only"),
        (f"local f = io.open('{p.path('text')}') f:close() f:read(1)", "closed file"),
        (f"io.open('/data/{'A' * 43}')", "not"),
        ("io.open(42)", "string expected"),
        (f"local f = io.open('{p.path('text')}') f._pos = -1 f:read(1)", "non-negative integer"),
        (f"local f = io.open('{p.path('text')}') f._pos = 'x' f:seek()", "non-negative integer"),
        (f"io.open('/block/{p.height + 1}')", "above the message's Block-Height"),
        ("io.popen('ls')", "popen"),
        ("io.lines('/etc/passwd')", "not a WeaveDrive path"),
        ("io.lines()", "no default input"),
        ("io.read()", "read"),
    ]:
        r = p.eval(code)
        assert r.error is not None and why in r.error, (code, r.error)


def test_attestation_above_the_message_height_does_not_count(p):
    late = p.path("late")
    r = p.eval(f"return io.open('{late}'):read('a')", height=p.height)
    assert "not admissible" in r.error and f"Block-Height {p.height}" in r.error
    assert p.value(f"return io.open('{late}'):read('a')", height=p.height + 1) == "attested late"


def test_no_io_without_the_device(net):
    p = Proc(net, devices=False)
    assert p.value("return type(io)") == "nil"


def test_without_extension_tag_nothing_opens(net):
    gw, ids, h, drive = net
    plain_module = gw.upload(item(b"", tags=[("Module-Format", LUA_NATIVE_FORMAT), ("Type", "Module")]))
    p = Proc((gw, {**ids, "module": plain_module}, h, drive))
    assert "not enabled" in p.eval(f"io.open('{p.path('text')}')").error
    assert "not enabled" in p.eval(f"io.open('/block/{h}')").error


def test_open_file_survives_snapshot_and_restore(net):
    p = Proc(net)
    p.value(f"F = io.open('{p.path('text')}'); First = F:read('l')")
    snap = p.instance.snapshot()
    q = Proc(net)
    q.instance.restore(snap)
    q.nonce = p.nonce
    assert q.value("return First .. '|' .. F:read('l') .. '|' .. F:seek()") == "first line|second line|23"
    # a failing message rolls the file position back with the rest of the state
    assert q.eval("F:read('l'); error('boom')").error is not None
    assert q.value("return F:seek()") == "23"


def test_on_boot_tx_runs_the_item(net):
    _gw, ids, h, _drive = net
    p = Proc(net, tags=(("On-Boot", ids["boot"]),), boot=False)
    tags = [{"name": "Type", "value": "Process"}, {"name": "On-Boot", "value": ids["boot"]}]
    first = message("P" * 43, "", tags, frm=UPLOADER.address)
    first["Block-Height"] = h
    r = p.instance.handle(first, p.env)
    assert r.error is None, r.error
    assert p.value("return BootRan") == "1"


def test_numeric_formats_must_be_integers(p):
    path = p.path("text")
    assert p.value(f"return io.open('{path}'):read(5.0)") == "first"
    assert "integer representation" in p.eval(f"io.open('{path}'):read(1e300)").error
    assert "integer representation" in p.eval(f"io.open('{path}'):read(2.5)").error
    assert "invalid format" in p.eval(f"io.open('{path}'):read('n')").error


def test_the_host_keeps_a_bounded_set_of_open_files(net, monkeypatch):
    monkeypatch.setattr(_lua_io, "MAX_OPEN", 2)
    p = Proc(net)
    keys = ("text", "big", "empty")
    p.value("Files = {" + ",".join(f"io.open('{p.path(k)}')" for k in keys) + "}")
    bridge = p.instance._drive
    assert list(bridge.files) == [p.path("big"), p.path("empty")]
    # the dropped one reopens on its next read, the others still read where they were
    assert p.value("return Files[1]:read('l') .. '|' .. tostring(Files[3]:read(1))") == "first line|nil"
    assert p.path("text") in bridge.files and len(bridge.files) == 2


def test_bytes_read_count_against_the_compute_limit(net):
    p = Proc(net, compute=200_000)
    path = p.path("big")  # ~3 MiB: ~49,000 instructions' worth per full read
    small = p.eval(f"local f = io.open('{path}') return #f:read(4096)")
    assert small.error is None and small.output["data"] == "4096"
    once = p.eval(f"local f = io.open('{path}') return #f:read('a')")
    assert once.error is None and once.gas_used >= BIG // 64 > small.gas_used  # at least the bytes read
    r = p.eval(f"local f = io.open('{path}') for i = 1, 5 do f:seek('set', 0) f:read('a') end")
    assert r.error is not None and "compute limit" in r.error
