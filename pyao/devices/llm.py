"""``llm@1.0``: LLM inference inside a process, on llama.cpp (llama-cpp-python), deterministic.

Contract
--------
* Assumes: a ``FileDrive`` (``weavedrive@1.0``) to read models from
  ``/data/<id>``; llama-cpp-python built with the flags in docs/llm.md
  (``GGML_NATIVE=OFF``); every compute unit of a network runs the same build
  and the same ``N_THREADS``.
* Produces: a ``ProcessDevice``. Its per-process state is a ``Session``
  record (``_llm_session``): model, sampling settings and the decoded tokens in
  their decode chunks. Operations (the Lua API in ``pyao/lua/llama.lua``):
  ``load(path)``, ``set_prompt(text)``, ``add(text)``, ``next()``, ``run(n)``,
  ``generate(prompt, opts_json)``, ``set_sampling(opts_json)``, ``info()``,
  ``stop()``.
* Determinism: CPU only, ``N_THREADS`` fixed, greedy decoding unless the
  session's temperature is > 0; then the sampler is seeded from the session's
  seed and the position, never from the clock. The seed: ``setSeed``, else
  the ``Hash-Chain`` (or ``Id``) of the message that loaded the model; a
  ``generate`` without a ``seed`` option is seeded from its own message. Grammars (GBNF) and JSON schemas constrain
  ``generate``. The KV cache is rebuilt from the session record when a context
  does not hold it (after a restore, a rollback, another unit), by decoding the
  same chunks in the same order.
* Cost: every token decoded (prompt or generated) costs ``token_cost(model)``
  = ceil(parameters / 1000) units of the process's compute limit (for native
  Lua, instructions): one instruction per thousand parameters per token.
  Rebuilding a cache costs the process nothing (it is not its doing). A call
  that would go over the budget left fails before decoding past it.
* Side effects: model files under ``cache_dir`` (``_llm_models``); live
  contexts (a few per model, least recently used reused); generations are
  handed to ``on_generation`` (provenance records), outside the evaluation.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pyao.abc import DeviceReply, FileDrive, ProcessContext, ProcessDevice
from pyao.devices._llm_models import LoadedModel, ModelStore
from pyao.devices._llm_session import Session
from pyao.errors import DeviceError

#: part of the protocol: every unit of a network must use the same count (it may change the floats).
#: One thread: on a busy shared host llama.cpp's spinning thread pool made 2 threads ~1000x slower
#: per token than 1 (docs/llm.md); a unit with idle cores may agree on more with its network.
N_THREADS = 1
N_CTX = 2048  # AO-Llama's CTX_SIZE
N_BATCH = 512
CONTEXTS_PER_MODEL = 4
DEFAULT_MAX_TOKENS = 128
MAX_TEXT_BYTES = 256 * 1024


@dataclass(frozen=True)
class Generation:
    """One finished ``generate`` call, for provenance records (outside the evaluation)."""

    process: str
    message: str
    model: str  # drive path
    model_sha256: str
    prompt: bytes
    output: bytes
    read_only: bool


def token_cost(model: LoadedModel) -> int:
    """Compute units per decoded token: one per thousand parameters (at least 1)."""
    return max(1, math.ceil(model.n_params / 1000))


class BudgetExceeded(DeviceError):
    """The tokens asked for cost more than the message's compute budget left."""


class _Context:
    """A live llama.cpp context: a cache of the session whose digest is ``key``."""

    def __init__(self, model: LoadedModel, n_ctx: int, n_threads: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = N_BATCH
        params.n_threads = params.n_threads_batch = n_threads
        params.no_perf = True
        self.model = model
        self.ctx = _internals.LlamaContext(model=model.handle, params=params, verbose=False)
        self.batch = _internals.LlamaBatch(n_tokens=N_BATCH, embd=0, n_seq_max=1, verbose=False)
        self.key: str | None = None
        self.n_past = 0

    def reset(self) -> None:
        self.ctx.kv_cache_clear()
        self.key, self.n_past = None, 0

    def decode(self, tokens: list[int] | tuple[int, ...]) -> None:
        self.batch.set_batch(tokens, n_past=self.n_past, logits_all=False)
        try:
            self.ctx.decode(self.batch)
        except RuntimeError as exc:  # llama_decode's nonzero answer (no room): a function of the session
            raise DeviceError(f"llama.cpp could not decode: {exc}") from None
        self.n_past += len(tokens)


def _digest(session: Session | None) -> str:
    return hashlib.sha256(session.encode() if session else b"").hexdigest()


def _seed_of(msg: dict) -> int:
    basis = str(msg.get("Hash-Chain") or msg.get("Id") or "")
    return int.from_bytes(hashlib.sha256(basis.encode()).digest()[:4], "little")


def _json_arg(raw: Any) -> dict:
    if raw in (None, b"", "", b"[]"):  # our Lua json writes an empty table as []
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, TypeError):
        raise DeviceError("options must be a JSON object") from None
    if not isinstance(value, dict):
        raise DeviceError("options must be a JSON object")
    return value


def _text_arg(raw: Any, what: str) -> bytes:
    if isinstance(raw, str):
        raw = raw.encode()
    if not isinstance(raw, bytes):
        raise DeviceError(f"{what} must be a string")
    if len(raw) > MAX_TEXT_BYTES:
        raise DeviceError(f"{what} is over {MAX_TEXT_BYTES} bytes")
    return raw


class LlmDevice(ProcessDevice):
    """``llm@1.0`` (see the module docstring)."""

    name = "llm@1.0"

    def __init__(
        self,
        drive: FileDrive | None,
        cache_dir: str | Path,
        *,
        n_ctx: int = N_CTX,
        n_threads: int = N_THREADS,
        on_generation: Callable[[Generation], None] | None = None,
    ) -> None:
        import llama_cpp._logger as llama_logger  # silence llama.cpp's stderr chatter

        llama_logger.set_verbose(False)
        self.models = ModelStore(drive, cache_dir)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.on_generation = on_generation
        self._contexts: dict[str, list[_Context]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the door

    def call(
        self, state: bytes | None, budget: int, process: ProcessContext, msg: dict, op: str, args: tuple
    ) -> DeviceReply:
        handler = _OPS.get(op)
        if handler is None:
            raise DeviceError(f"unknown llm@1.0 operation {op!r}; known: {', '.join(sorted(_OPS))}")
        session = Session.decode(state) if state else None
        with self._lock:
            return handler(_Call(self, session, budget, process, msg), *args)

    # ------------------------------------------------------------ contexts

    def context_for(self, session: Session, model: LoadedModel) -> _Context:
        """A live context holding ``session`` exactly (rebuilt from the record on a miss)."""
        pool = self._contexts.setdefault(session.sha256, [])
        key = _digest(session)
        for i, ctx in enumerate(pool):
            if ctx.key == key:
                pool.append(pool.pop(i))  # most recently used last
                return ctx
        room = len(pool) < CONTEXTS_PER_MODEL
        ctx = _Context(model, self.n_ctx_for(model), self.n_threads) if room else pool.pop(0)  # LRU reused
        pool.append(ctx)
        ctx.reset()
        for chunk in session.chunks:
            ctx.decode(chunk)
        ctx.key = key
        return ctx

    def n_ctx_for(self, model: LoadedModel) -> int:
        """The context size used with ``model``: ``n_ctx``, or less if the model was trained on less."""
        return min(self.n_ctx, model.n_ctx_train or self.n_ctx)

    def forget(self, ctx: _Context) -> None:
        """A context whose contents no longer match any session (an operation failed half-way)."""
        ctx.reset()

    def close(self) -> None:
        """Drain and stop the provenance recorder, if it has a ``close`` (``ProvenanceRecorder``)."""
        close = getattr(self.on_generation, "close", None)
        if close is not None:
            close()


class _Call:
    """One device call: the session, the budget left and what it has cost so far."""

    def __init__(self, device: LlmDevice, session: Session | None, budget: int, process, msg: dict) -> None:
        self.device, self.session, self.budget = device, session, budget
        self.process, self.msg = process, msg
        self.cost = 0
        self._model: LoadedModel | None = None

    def need_session(self) -> Session:
        if self.session is None:
            raise DeviceError("no model loaded: call Llama.load('/data/<id>') first")
        return self.session

    def model(self) -> LoadedModel:
        if self._model is None:
            s = self.need_session()
            self._model = self.device.models.for_session(s.model, s.sha256, self.process, self.msg)
        return self._model

    def context(self) -> _Context:
        return self.device.context_for(self.need_session(), self.model())

    def reply(self, *values: Any) -> DeviceReply:
        return DeviceReply(self.cost, self.session.encode() if self.session else None, values)

    def charge(self, n_tokens: int) -> None:
        cost = n_tokens * token_cost(self.model())
        if self.cost + cost > self.budget:
            raise BudgetExceeded(
                f"compute limit exceeded: {n_tokens} more tokens cost {cost}, {self.budget - self.cost} left"
            )
        self.cost += cost

    def tokenize(self, text: bytes, *, bos: bool) -> list[int]:
        model = self.model()
        tokens = model.handle.tokenize(text, add_bos=bos, special=False)
        self.check_room(len(tokens))
        return tokens

    def check_room(self, n_tokens: int) -> None:
        n_ctx = self.device.n_ctx_for(self.model())
        if self.need_session().n_past + n_tokens > n_ctx:
            raise DeviceError(f"the context is full ({n_ctx} tokens)")

    def decode(self, tokens: list[int]) -> None:
        """Decode ``tokens`` onto the session (in N_BATCH chunks), charging for them."""
        ctx = self.context()
        try:
            for start in range(0, len(tokens), N_BATCH):
                chunk = tokens[start : start + N_BATCH]
                self.charge(len(chunk))
                ctx.decode(chunk)
                self.session = self.need_session().with_chunk(chunk)
                ctx.key = _digest(self.session)
        except BaseException:
            self.device.forget(ctx)
            raise


# ---------------------------------------------------------------- operations


def _op_load(call: _Call, path: Any) -> DeviceReply:
    path_text = _text_arg(path, "the model path").decode(errors="replace")
    model = call.device.models.get(path_text, call.process, call.msg)
    call.session = Session(model=path_text, sha256=model.sha256, seed=_seed_of(call.msg))
    call._model = model
    return call.reply(_info(call))


def _info(call: _Call) -> bytes:
    session, model = call.need_session(), call.model()
    return json.dumps(
        {"model": session.model, "sha256": session.sha256, "parameters": model.n_params, "vocab": model.n_vocab,
         "n_ctx": call.device.n_ctx_for(model), "tokens": session.n_past, "temperature": session.temperature,
         "seed": session.seed, "token_cost": token_cost(model), "threads": call.device.n_threads}
    ).encode()  # fmt: skip


def _op_info(call: _Call) -> DeviceReply:
    return call.reply(_info(call) if call.session else None)


def _op_set_prompt(call: _Call, text: Any) -> DeviceReply:
    call.session = call.need_session().cleared()
    tokens = call.tokenize(_text_arg(text, "the prompt"), bos=True)
    call.decode(tokens)
    return call.reply(len(tokens))


def _op_add(call: _Call, text: Any) -> DeviceReply:
    tokens = call.tokenize(_text_arg(text, "the text"), bos=False)
    if tokens:
        call.decode(tokens)
    return call.reply(len(tokens))


def _op_set_sampling(call: _Call, opts: Any) -> DeviceReply:
    options = _json_arg(opts)
    session = call.need_session()
    temperature = options.get("temperature", session.temperature)
    seed = options.get("seed", session.seed)
    if not isinstance(temperature, (int, float)) or not 0 <= temperature <= 10:
        raise DeviceError("temperature must be a number from 0 to 10")
    call.session = replace(session, temperature=float(temperature), seed=_int_seed(seed))
    return call.reply()


def _int_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, str)):
        raise DeviceError("seed must be an integer or a string")
    if isinstance(seed, int):
        return seed & 0xFFFFFFFF
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:4], "little")


def _op_stop(call: _Call) -> DeviceReply:
    call.session = None
    return call.reply()


def _op_next(call: _Call) -> DeviceReply:
    pieces = _sample(call, 1, grammar=None)
    return call.reply(pieces[0] if pieces else None)


def _op_run(call: _Call, n: Any) -> DeviceReply:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise DeviceError("run(n): n must be a whole number")
    return call.reply(b"".join(_sample(call, n, grammar=None)))


def _op_generate(call: _Call, prompt: Any, opts: Any = None) -> DeviceReply:
    options = _json_arg(opts)
    max_tokens = options.get("max_tokens", DEFAULT_MAX_TOKENS)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 0 <= max_tokens <= call.device.n_ctx:
        raise DeviceError(f"max_tokens must be a whole number up to {call.device.n_ctx}")
    # without a seed option, each generation is seeded from the message that asks for it
    sampling = {"seed": _seed_of(call.msg), **{k: options[k] for k in ("temperature", "seed") if k in options}}
    _op_set_sampling(call, json.dumps(sampling))
    grammar = _grammar_of(options)
    prompt_bytes = _text_arg(prompt, "the prompt")
    _op_set_prompt(call, prompt_bytes)
    pieces = _sample(call, max_tokens, grammar=grammar)
    output = b"".join(pieces)
    ended = len(pieces) < max_tokens
    _record(call, prompt_bytes, output)
    meta = {"tokens": len(pieces), "ended": ended, "sha256": call.need_session().sha256}
    return call.reply(output, json.dumps(meta).encode())


def _grammar_of(options: dict) -> bytes | None:
    if "grammar" in options and "json_schema" in options:
        raise DeviceError("give grammar or json_schema, not both")
    if "grammar" in options:
        if not isinstance(options["grammar"], str):
            raise DeviceError("grammar must be GBNF text")
        return options["grammar"].encode()
    if "json_schema" in options:
        from llama_cpp.llama_grammar import json_schema_to_gbnf

        schema = options["json_schema"]
        try:
            return json_schema_to_gbnf(schema if isinstance(schema, str) else json.dumps(schema)).encode()
        except Exception as exc:  # the converter raises many kinds on a bad schema
            raise DeviceError(f"json_schema cannot be turned into a grammar: {exc}") from None
    return None


def _record(call: _Call, prompt: bytes, output: bytes) -> None:
    hook = call.device.on_generation
    if hook is None:
        return
    session = call.need_session()
    hook(Generation(call.process.id, str(call.msg.get("Id") or ""), session.model, session.sha256, prompt, output,
                    bool(call.msg.get("Read-Only"))))  # fmt: skip


def _sample(call: _Call, n: int, *, grammar: bytes | None) -> list[bytes]:
    """Sample up to ``n`` tokens (stopping at end of generation), decoding each onto the session."""
    import llama_cpp

    session = call.need_session()
    model = call.model()
    vocab = model.handle.vocab
    chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
    try:
        if grammar is not None:
            g = llama_cpp.llama_sampler_init_grammar(vocab, grammar, b"root")
            if not g:
                raise DeviceError("the grammar does not parse (GBNF with a 'root' rule expected)")
            # byte-fallback tokens slip past llama.cpp's grammar check (a lone <0x08> byte passed a
            # JSON string rule in our tests), so a constrained answer is made of whole-text tokens only
            llama_cpp.llama_sampler_chain_add(chain, _no_byte_tokens(model))
            llama_cpp.llama_sampler_chain_add(chain, g)
        if session.temperature > 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(session.temperature))
            seed = (session.seed * 1_000_003 + session.n_past) & 0xFFFFFFFF
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed))
        else:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        pieces: list[bytes] = []
        for _ in range(n):
            if call.need_session().n_past == 0:
                raise DeviceError("no prompt: call Llama.setPrompt first")
            ctx = call.context()
            token = llama_cpp.llama_sampler_sample(chain, ctx.ctx.ctx, -1)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            call.check_room(1)
            call.decode([token])
            pieces.append(_piece(vocab, token))
        return pieces
    finally:
        llama_cpp.llama_sampler_free(chain)


def _no_byte_tokens(model: LoadedModel):
    """A logit-bias sampler that rules out the vocabulary's byte-fallback tokens."""
    import llama_cpp

    vocab = model.handle.vocab
    byte_tokens = [t for t in range(model.n_vocab)
                   if llama_cpp.llama_vocab_get_attr(vocab, t) & llama_cpp.LLAMA_TOKEN_ATTR_BYTE]  # fmt: skip
    biases = (llama_cpp.llama_logit_bias * max(1, len(byte_tokens)))()
    for i, t in enumerate(byte_tokens):
        biases[i].token, biases[i].bias = t, float("-inf")
    return llama_cpp.llama_sampler_init_logit_bias(model.n_vocab, len(byte_tokens), biases)


def _piece(vocab, token: int) -> bytes:
    """The text of one token (llama-cpp-python's own helper returns a padded 32-byte buffer)."""
    import ctypes

    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, size, 0, False)
        if n >= 0:
            return buf.raw[:n]
        size = -n


_OPS: dict[str, Callable[..., DeviceReply]] = {
    "load": _op_load,
    "info": _op_info,
    "set_prompt": _op_set_prompt,
    "add": _op_add,
    "next": _op_next,
    "run": _op_run,
    "generate": _op_generate,
    "set_sampling": _op_set_sampling,
    "stop": _op_stop,
}

__all__ = ["N_THREADS", "BudgetExceeded", "Generation", "LlmDevice", "token_cost"]
