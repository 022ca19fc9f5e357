"""WASM process state: snapshots (compressed, versioned, checked), restore, determinism, WeaveDrive wiring."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from pyao.abc import DriveFile, FileDrive
from pyao.errors import DeviceAccessDenied, NotFound, SnapshotError
from tests.unit._wasm import ENV, KIT, W32, W64, make, msg

FORMATS = [W32, W64]


def _run(p, actions):
    return [p.handle(msg(a, nonce=i), ENV) for i, a in enumerate(actions, start=1)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_snapshot_restore_continues_identically(fmt):
    a = make("counter", fmt, compact_every=3)
    _run(a, ["Increment"] * 5)  # base refreshed once, two messages in the log
    snap = a.snapshot()
    assert snap == a.snapshot()  # equal state, equal bytes
    b = make("counter", fmt)
    b.restore(snap)
    assert b.memory_digest() == a.memory_digest()
    assert a.handle(msg("Increment", nonce=6), ENV).output == b.handle(msg("Increment", nonce=6), ENV).output == 6
    assert b.memory_digest() == a.memory_digest()


@pytest.mark.parametrize("fmt", FORMATS)
def test_two_instances_agree_on_digests(fmt):
    one, two = make("echo", fmt, compact_every=2), make("echo", fmt, compact_every=5)
    for i in range(1, 8):
        m = msg("Say" if i % 3 else "Fail", f"payload {i}", nonce=i)
        assert one.handle(m, ENV) == two.handle(m, ENV)
        assert one.memory_digest() == two.memory_digest()
    assert one.snapshot() != two.snapshot()  # different compaction points...
    fresh = make("echo", fmt)
    fresh.restore(one.snapshot())
    assert fresh.memory_digest() == two.memory_digest()  # ...the same state


def test_snapshot_is_compressed_and_damage_is_refused():
    p = make("counter", W32)
    _run(p, ["Increment"] * 3)
    snap = p.snapshot()
    assert len(snap) < p.memory_size // 4
    other = make("counter", W32)
    for bad in (b"", b"junk", snap[:-1], snap[:60] + bytes([snap[60] ^ 1]) + snap[61:], snap + b"x"):
        with pytest.raises(SnapshotError):
            other.restore(bad)
    flipped = bytearray(snap)
    flipped[len(snap) // 2] ^= 0xFF
    with pytest.raises(SnapshotError):
        other.restore(bytes(flipped))
    assert other.handle(msg("Read"), ENV).output == 0  # a refused restore changed nothing
    with pytest.raises(SnapshotError, match="another module"):
        make("echo", W32).restore(snap)
    with pytest.raises(SnapshotError, match="another module"):
        make("counter", W64).restore(snap)


def test_restore_over_the_memory_limit_is_refused():
    big = make("hog", W32, memory=32 << 20)
    big.handle(msg("Grow", "8"), ENV)
    small = make("hog", W32, memory=4 << 20)
    with pytest.raises(SnapshotError, match=r"limit|out of memory"):
        small.restore(big.snapshot())


# --------------------------------------------------------------------------- WeaveDrive


class BytesDrive(FileDrive):
    """A real FileDrive over in-memory files: the unit-test stand-in for the weavedrive@1.0 device
    (the device itself, over the gateway, is another package's work)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.opened: list[tuple[str, str]] = []

    def open(self, path, process, msg):
        self.opened.append((path, msg["Id"]))
        if path == "/data/secret":
            raise DeviceAccessDenied("not attested")
        if path not in self.files:
            raise NotFound(path)
        return _File(self.files[path])


class _File(DriveFile):
    def __init__(self, data: bytes) -> None:
        self.data, self.size = data, len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]


@pytest.mark.parametrize("fmt", FORMATS)
def test_weavedrive_reads_through_the_device(fmt):
    content = bytes(range(100))
    drive = BytesDrive({"/data/abc": content})
    p = make("echo", fmt, devices={"weavedrive@1.0": drive})
    r = p.handle(msg("Read-File", "/data/abc", nonce=3), ENV)
    assert r.ok and r.output == content[:64].hex()
    assert drive.opened == [("/data/abc", f"{3:043d}")]
    assert "FILE NOT FOUND" in p.handle(msg("Read-File", "/data/missing"), ENV).error
    assert "refused" in p.handle(msg("Read-File", "/data/secret"), ENV).error
    assert p.handle(msg("Read-File", "/etc/passwd"), ENV).error == "no such file"  # not a drive path


@pytest.mark.parametrize("fmt", FORMATS)
def test_weavedrive_absent_is_a_clear_error(fmt):
    p = make("echo", fmt)
    r = p.handle(msg("Read-File", "/data/abc"), ENV)
    assert "weavedrive@1.0" in r.error and "not available" in r.error
    assert p.handle(msg("Say", "still fine", nonce=2), ENV).output == "still fine"


# --------------------------------------------------------------------------- the kit's build


@pytest.mark.skipif(shutil.which("clang-16") is None, reason="clang-16 is not installed (CI): built files are used")
def test_kit_build_is_reproducible(tmp_path):
    root = Path(__file__).resolve().parents[2]
    subprocess.run([str(root / "scripts" / "build-wasm-kit"), str(tmp_path)], check=True, capture_output=True)
    for built in sorted(KIT.rglob("*.wasm")):
        rebuilt = tmp_path / built.relative_to(KIT)
        assert hashlib.sha256(rebuilt.read_bytes()).digest() == hashlib.sha256(built.read_bytes()).digest(), built


def test_sparse_image_digest_is_the_digest_of_the_whole_memory():
    p = make("hog", W32, memory=16 << 20)
    p.handle(msg("Grow", "3"), ENV)
    memory = p._rt.memory
    image = memory.capture()
    assert len(image.chunks) < image.size // (1 << 20)  # the grown, untouched chunks are left out
    assert image.digest() == hashlib.sha256(memory.image()).hexdigest() == p.memory_digest()
