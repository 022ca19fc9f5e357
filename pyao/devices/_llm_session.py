"""The ``llm@1.0`` per-process session record: what a process's model session *is*.

Contract
--------
* Assumes: nothing (pure data).
* Produces: ``Session`` (frozen) and its canonical bytes (``encode``/``decode``).
  A session names its model (the drive path and the sha256 of the file's
  bytes), its sampling settings, and every token it has decoded, grouped in the
  chunks in which they were decoded. The KV cache is a deterministic function of
  that record (decoding the same chunks in the same order on the same build and
  thread count gives the same floats), so the record is all the state a
  checkpoint needs; a live llama.cpp context is only a cache of it.
* Side effects: none. ``decode`` raises ``DeviceError`` on damaged bytes.
"""

from __future__ import annotations

import json
import struct
from array import array
from dataclasses import dataclass, field, replace

from pyao.errors import DeviceError

_MAGIC = b"PYAO-LLM-SESSION-1\n"


@dataclass(frozen=True)
class Session:
    """One process's model session (see the module docstring)."""

    model: str  # the drive path it was loaded from (/data/<id>)
    sha256: str  # of the model file's bytes
    temperature: float = 0.0  # 0: greedy
    seed: int = 0  # base seed for sampling when temperature > 0
    chunks: tuple[tuple[int, ...], ...] = field(default=())

    @property
    def n_past(self) -> int:
        return sum(len(c) for c in self.chunks)

    def tokens(self) -> list[int]:
        return [t for c in self.chunks for t in c]

    def with_chunk(self, tokens: list[int] | tuple[int, ...]) -> Session:
        return replace(self, chunks=(*self.chunks, tuple(tokens)))

    def cleared(self) -> Session:
        return replace(self, chunks=())

    def encode(self) -> bytes:
        header = json.dumps(
            {"model": self.model, "sha256": self.sha256, "temperature": self.temperature, "seed": self.seed},
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
        lengths = array("I", (len(c) for c in self.chunks))
        flat = array("I", self.tokens())
        return b"".join(
            [_MAGIC, struct.pack("<I", len(header)), header, struct.pack("<I", len(lengths)),
             lengths.tobytes(), flat.tobytes()]
        )  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> Session:
        try:
            if not data.startswith(_MAGIC):
                raise ValueError("not an llm@1.0 session")
            pos = len(_MAGIC)
            (hlen,) = struct.unpack_from("<I", data, pos)
            header = json.loads(data[pos + 4 : pos + 4 + hlen])
            pos += 4 + hlen
            (n_chunks,) = struct.unpack_from("<I", data, pos)
            pos += 4
            lengths = array("I", data[pos : pos + 4 * n_chunks])
            pos += 4 * n_chunks
            flat = array("I", data[pos:])
            if len(lengths) != n_chunks or sum(lengths) != len(flat):
                raise ValueError("chunk lengths do not match the tokens")
            chunks, at = [], 0
            for n in lengths:
                chunks.append(tuple(flat[at : at + n]))
                at += n
            return cls(
                model=str(header["model"]),
                sha256=str(header["sha256"]),
                temperature=float(header["temperature"]),
                seed=int(header["seed"]),
                chunks=tuple(chunks),
            )
        except (ValueError, KeyError, TypeError, struct.error) as exc:
            raise DeviceError(f"damaged llm session state: {exc}") from None


__all__ = ["Session"]
