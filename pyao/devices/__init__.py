"""Compute-unit devices (``name@version``): services a process reaches from inside its VM.

See ``pyao.abc`` (section devices). Modules: ``llm`` (``llm@1.0``, inference on
llama.cpp), ``tinymodel`` (random-weight GGUF models for tests and the demo).
"""
