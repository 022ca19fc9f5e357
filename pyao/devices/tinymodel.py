"""Random-weight llama GGUF models with a real SentencePiece-style vocabulary, for tests and demos.

Contract
--------
* Assumes: the ``gguf`` and ``numpy`` packages (test extras).
* Produces: ``write_tiny_model(path, ...)`` writes a llama-architecture GGUF
  file that llama.cpp loads: a vocabulary of the three special tokens, the 256
  byte-fallback tokens ``<0x00>``..``<0xFF>``, every printable ASCII character
  (space as ``▁``) and a few common words, so any text tokenizes and any token
  detokenizes. Weights are drawn from a seeded generator, so the same arguments
  give the same bytes. The model says nothing sensible: it exists to exercise
  loading, decoding, grammars and determinism without downloading anything.
* Side effects: writes ``path``.

``params_for(target)`` picks dimensions for roughly ``target`` parameters
(the benchmark's ~100M-parameter model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SPACE = "\u2581"  # SentencePiece's word-boundary mark
WORDS = ("the", "and", "grade", "petition", "king", "llama", "token", "yes", "no", "true", "false", "null")


@dataclass(frozen=True)
class TinyShape:
    """Dimensions of a generated model."""

    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_ff: int = 128
    n_ctx_train: int = 2048


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    """Tokens, scores and token types (1 normal, 2 unknown, 3 control, 6 byte)."""
    tokens, scores, types = ["<unk>", "<s>", "</s>"], [0.0, 0.0, 0.0], [2, 3, 3]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(6)
    pieces = [SPACE if c == " " else c for c in map(chr, range(32, 127))]
    pieces += [SPACE + w for w in WORDS] + list(WORDS)
    for i, piece in enumerate(pieces):
        tokens.append(piece)
        scores.append(-1.0 - i / 1000 if len(piece) == 1 else -0.1)  # prefer whole words when merging
        types.append(1)
    return tokens, scores, types


def params_for(target: int) -> TinyShape:
    """A shape with about ``target`` parameters (F16 ~100M for the benchmark)."""
    n_embd = 768 if target >= 50_000_000 else 256
    n_ff = 4 * n_embd
    per_layer = 4 * n_embd * n_embd + 3 * n_embd * n_ff
    return TinyShape(n_embd=n_embd, n_layer=max(1, round(target / per_layer)), n_head=12 if n_embd == 768 else 4,
                     n_ff=n_ff)  # fmt: skip


def write_tiny_model(path: str | Path, *, shape: TinyShape = TinyShape(), seed: int = 0, f16: bool = False) -> Path:
    """Write a random-weight llama GGUF to ``path`` and return it (same arguments, same bytes)."""
    import gguf
    import numpy as np

    path = Path(path)
    rng = np.random.default_rng(seed)
    dtype = np.float16 if f16 else np.float32
    tokens, scores, types = vocabulary()
    n_vocab, e, ff = len(tokens), shape.n_embd, shape.n_ff

    def weight(*dims: int) -> np.ndarray:
        # cast explicitly: float32 / float64 scalars would give F64 tensors, which llama.cpp rejects
        return (rng.standard_normal(dims, dtype=np.float32) * np.float32(1.0 / np.sqrt(dims[-1]))).astype(dtype)

    def norm() -> np.ndarray:
        return np.ones(e, dtype=np.float32)

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("pyao-tiny-random")
    w.add_context_length(shape.n_ctx_train)
    w.add_embedding_length(e)
    w.add_block_count(shape.n_layer)
    w.add_feed_forward_length(ff)
    w.add_head_count(shape.n_head)
    w.add_head_count_kv(shape.n_head)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(e // shape.n_head)
    w.add_vocab_size(n_vocab)
    w.add_file_type(1 if f16 else 0)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_tensor("token_embd.weight", weight(n_vocab, e))
    for i in range(shape.n_layer):
        w.add_tensor(f"blk.{i}.attn_norm.weight", norm())
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            w.add_tensor(f"blk.{i}.{name}.weight", weight(e, e))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", norm())
        w.add_tensor(f"blk.{i}.ffn_gate.weight", weight(ff, e))
        w.add_tensor(f"blk.{i}.ffn_up.weight", weight(ff, e))
        w.add_tensor(f"blk.{i}.ffn_down.weight", weight(e, ff))
    w.add_tensor("output_norm.weight", norm())
    w.add_tensor("output.weight", weight(n_vocab, e))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


__all__ = ["TinyShape", "params_for", "vocabulary", "write_tiny_model"]
