-- Llama: the ao-llama API for native Lua processes, served by the compute unit's llm@1.0 device.
--
-- Load it with `Llama = require("llama")` (or AO-Llama's `require(".Llama")`).
-- The model session (the tokens decoded so far, hence the KV cache) is process
-- state: it lives across messages and in checkpoints, kept by the host, not in
-- any global the process can change. Decoding is greedy unless setTemp(t > 0)
-- or a `temperature` option asks for seeded sampling (seed: setSeed or the load
-- message's Hash-Chain for next/run; the `seed` option, else the asking message's
-- Hash-Chain, for generate). Every decoded token costs
-- compute (Llama.info().token_cost instructions each).
--
--   Llama.load("/data/<id>")      load a GGUF model through WeaveDrive; returns Llama.info()
--   Llama.setPrompt(text)         reset the context and decode text (with BOS)
--   Llama.add(text)               decode more text onto the context
--   Llama.next()                  one more token's text, nil at end of generation
--   Llama.run(n)                  up to n more tokens, concatenated
--   Llama.generate(prompt, opts)  setPrompt + up to opts.max_tokens (128) tokens; returns text, meta
--                                 opts: max_tokens, grammar (GBNF) | json_schema (table or JSON text),
--                                 temperature, seed; meta: {tokens, ended, sha256}
--   Llama.setTemp(t), Llama.setSeed(s), Llama.info(), Llama.stop()

local json = require("json")
local devices = require("devices")

local Llama = { _version = "pyao-llm-1" }

local function call(op, ...)
  return devices.call("llm@1.0", op, ...)
end

function Llama.load(path)
  assert(type(path) == "string", "Llama.load(path): path must be a string such as /data/<id>")
  return json.decode(call("load", path))
end

function Llama.info()
  local info = call("info")
  return info and json.decode(info) or nil
end

function Llama.setPrompt(text)
  assert(type(text) == "string", "Llama.setPrompt(text): text must be a string")
  return call("set_prompt", text)
end

function Llama.add(text)
  assert(type(text) == "string", "Llama.add(text): text must be a string")
  return call("add", text)
end

function Llama.next()
  return call("next")
end

function Llama.run(n)
  n = math.tointeger(n)
  assert(n and n >= 0, "Llama.run(n): n must be a whole number")
  return call("run", n)
end

function Llama.setTemp(t)
  return call("set_sampling", json.encode({ temperature = t }))
end

function Llama.setSeed(s)
  return call("set_sampling", json.encode({ seed = s }))
end

function Llama.generate(prompt, opts)
  assert(type(prompt) == "string", "Llama.generate(prompt, opts): prompt must be a string")
  opts = opts or {}
  assert(type(opts) == "table", "Llama.generate(prompt, opts): opts must be a table")
  local out, meta = call("generate", prompt, json.encode(opts))
  return out, json.decode(meta)
end

function Llama.stop()
  return call("stop")
end

return Llama
