"""Tokens per second: in-process inference (Lua and WASM processes calling llm@1.0) vs llama-cpp-python.

Both sides run the same generated random-weight GGUF (F16, ~100M parameters by
default), the same prompt, greedy decoding, the same thread count
(``pyao.devices.llm.N_THREADS``), n_ctx and n_batch, side by side in one run:

* native: ``llama_cpp.Llama`` — ``eval`` the prompt, then ``sample(temp=0)`` +
  ``eval([token])`` per token, as an application using the library would;
* pyao: a native-Lua process whose message runs ``Llama.setPrompt(p)`` then
  ``Llama.run(n)`` through the device door (host call, session record, budget
  accounting, context cache lookup per token);
* pyao wasm: a WASM process (``kit/wasm/llm.c``, wasm32) whose message asks
  ``run(n)`` through the ``pyao.device_call`` import (JSON request and answer,
  the cost taken from its fuel).

Both produce the same greedy tokens (checked), so they stop at the same place.
Rounds alternate and each side keeps its best round. Goal (issue 7): pyao/native >= 0.9.

    python bench/bench_llm.py [--params 100e6] [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, ".")  # run from the repository root: the process helpers live in tests/unit

PROMPT = "the llama king grades the petition and says"


def native_round(model_path: Path, n_tokens: int, n_ctx: int) -> tuple[float, bytes]:
    import llama_cpp

    from pyao.devices.llm import N_BATCH, N_THREADS

    llm = llama_cpp.Llama(
        str(model_path), n_ctx=n_ctx, n_batch=N_BATCH, n_ubatch=N_BATCH, n_threads=N_THREADS,
        n_threads_batch=N_THREADS, n_gpu_layers=0, verbose=False,
    )  # fmt: skip
    llm.eval(llm.tokenize(PROMPT.encode(), add_bos=True, special=False))
    out = []
    t0 = time.perf_counter()
    for _ in range(n_tokens):
        token = llm.sample(temp=0.0)
        if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
            break
        out.append(token)
        llm.eval([token])
    elapsed = time.perf_counter() - t0
    text = llm.detokenize(out)
    llm.close()
    return len(out) / elapsed, text


def pyao_round(device, n_tokens: int) -> tuple[float, bytes]:
    from tests.unit._llm import MODEL_PATH, llama_process

    p = llama_process(device, compute=10**12)
    n_prompt = int(p.value(f'Llama.load("{MODEL_PATH}") and Llama.setPrompt("{PROMPT}")'))
    t0 = time.perf_counter()
    r = p.eval(f"Out = Llama.run({n_tokens}) print(Llama.info().tokens)")
    elapsed = time.perf_counter() - t0
    assert r.error is None, r.error
    return (int(r.output["data"]) - n_prompt) / elapsed, p.value("Out").encode()


def wasm_round(device, n_tokens: int) -> tuple[float, bytes]:
    import json

    from tests.unit._llm import MODEL_PATH
    from tests.unit._wasm import ENV, W32, make, msg

    def call(p, action: str, data: str = "", nonce: int = 1, **tags):
        m = msg(action, data, nonce)
        m["Tags"] += [{"name": k, "value": str(v)} for k, v in tags.items()]
        r = p.handle(m, ENV)
        assert r.error is None, r.error
        return r.output["values"]

    p = make("llm", W32, devices={"llm@1.0": device}, compute=10**12)
    call(p, "Load", MODEL_PATH)
    n_prompt = json.loads(call(p, "Prompt", PROMPT, 2) and call(p, "Info", nonce=3)[0])["tokens"]
    t0 = time.perf_counter()
    [text] = call(p, "Run", nonce=4, Tokens=n_tokens)
    elapsed = time.perf_counter() - t0
    n = json.loads(call(p, "Info", nonce=5)[0])["tokens"] - n_prompt
    return n / elapsed, text.encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=100e6)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from pyao.devices.llm import N_CTX, N_THREADS
    from pyao.devices.tinymodel import params_for, write_tiny_model
    from tests.unit._llm import device_for

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shape = params_for(int(args.params))
        model = write_tiny_model(root / "bench.gguf", shape=shape, f16=True)
        device = device_for(root, model)
        print(f"model: F16 {shape}, {model.stat().st_size / 1e6:.0f} MB; threads {N_THREADS}; {args.tokens} tokens")
        best_native = best_pyao = best_wasm = 0.0
        for i in range(args.rounds):
            native, native_text = native_round(model, args.tokens, N_CTX)
            ours, our_text = pyao_round(device, args.tokens)
            wasm, wasm_text = wasm_round(device, args.tokens)
            # the process's text reaches us through Output (UTF-8 with replacement), so compare it that way
            assert native_text.decode(errors="replace").encode() == our_text, "the greedy outputs differ"
            assert wasm_text == our_text, "the WASM process's greedy output differs from the Lua process's"
            best_native, best_pyao, best_wasm = max(best_native, native), max(best_pyao, ours), max(best_wasm, wasm)
            print(f"round {i + 1}: native {native:7.1f}   pyao lua {ours:7.1f}   pyao wasm {wasm:7.1f} tok/s")
        print(
            f"best: native {best_native:.1f} tok/s, pyao lua {best_pyao:.1f} tok/s (ratio "
            f"{best_pyao / best_native:.3f}), pyao wasm {best_wasm:.1f} tok/s (ratio {best_wasm / best_native:.3f})"
        )


if __name__ == "__main__":
    main()
