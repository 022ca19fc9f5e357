-- process: pyao's aos-compatible process library (written from the aos
-- behaviour described in docs/lua-modules.md, not from aos's source).
--
-- process.handle(msg, env) is called once per message by the VM and returns
-- the result table {Output, Messages, Spawns, Assignments} or {Error}.
-- Globals it maintains: ao, Handlers, Utils, Inbox, Owner, Name, Errors,
-- Colors, and the functions Send, Spawn, Assign, Receive, print, Prompt,
-- Dump, Version.

local _, private = ...
local unordered_next = private and private.unordered_next -- see _host.lua; nil when loaded by Eval
local run_handlers = private and private.run_handlers -- the host's pooled coroutine (see _host.lua)
local json = require("json")
local utils = require("utils")
ao = require("ao")
Handlers = require("handlers")
Utils = utils

local process = { _version = "pyao-1" }
local MAX_INBOX = 10000

Inbox = {}
Errors = {}
Name = nil
Owner = nil
Colors = {
  red = "\27[31m", green = "\27[32m", blue = "\27[34m", gray = "\27[90m", reset = "\27[0m",
}
Bell = "\7"

local logs = { n = 0 }

-- ---------------------------------------------------------------- printing

local function dump(v, indent, seen)
  if type(v) ~= "table" then
    if type(v) == "string" then
      return string.format("%q", v)
    end
    return tostring(v)
  end
  if seen[v] then
    return "<cycle>"
  end
  seen[v] = true
  indent = indent or ""
  local inner = indent .. "  "
  local parts = {}
  local n = rawlen(v)
  for i = 1, n do
    parts[#parts + 1] = inner .. dump(v[i], inner, seen)
  end
  for k, x in pairs(v) do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or "[" .. dump(k, inner, seen) .. "]"
      parts[#parts + 1] = inner .. key .. " = " .. dump(x, inner, seen)
    end
  end
  seen[v] = nil
  if #parts == 0 then
    return "{}"
  end
  return "{\n" .. table.concat(parts, ",\n") .. "\n" .. indent .. "}"
end

function Dump(v)
  return dump(v, "", {})
end

function print(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = type(v) == "table" and Dump(v) or tostring(v)
  end
  logs.n = logs.n + 1
  logs[logs.n] = table.concat(parts, "\t")
end

-- The last prompt made of strings only, and what it was made of (read in the
-- order and number of times the expression reads them): the same parts make the
-- same text, so it is not joined again (tostring of an integer, as long as
-- tostring is still the sandbox's, is the integer's digits).
local sandbox_tostring = tostring
local last_prompt, last_parts = nil, {}

function Prompt()
  local green, name, gray, blue = Colors.green, Name or "aos", Colors.gray, Colors.blue
  local gray2, red, inbox = Colors.gray, Colors.red, #Inbox
  local p = last_parts
  if tostring == sandbox_tostring and inbox == p[7] and green == p[1] and name == p[2] and gray == p[3]
    and blue == p[4] and gray2 == p[5] and red == p[6] then
    local gray3, reset = Colors.gray, Colors.reset
    if gray3 == p[8] and reset == p[9] then
      return last_prompt
    end
    return green .. name .. gray .. "@" .. blue .. "aos-pyao" .. gray2 .. "[Inbox:" .. red .. tostring(inbox) .. gray3
      .. "]" .. reset .. "> "
  end
  local count = tostring(inbox)
  local gray3, reset = Colors.gray, Colors.reset
  local text = green .. name .. gray .. "@" .. blue .. "aos-pyao" .. gray2 .. "[Inbox:" .. red .. count .. gray3 .. "]"
    .. reset .. "> "
  if tostring == sandbox_tostring and math.type(inbox) == "integer" and type(green) == "string"
    and type(name) == "string" and type(gray) == "string" and type(blue) == "string" and type(gray2) == "string"
    and type(red) == "string" and type(gray3) == "string" and type(reset) == "string" then
    last_prompt, last_parts = text, { green, name, gray, blue, gray2, red, inbox, gray3, reset }
  end
  return text
end

function Version()
  print("version: " .. process._version)
end

-- ------------------------------------------------------------------ globals

function Send(msg)
  local h = ao.send(msg)
  h.output = "Message added to outbox"
  return h
end

function Spawn(...)
  local module, msg = ...
  if select("#", ...) == 1 then
    module, msg = ao._module, ...
  end
  local h = ao.spawn(module, msg or {})
  h.output = "Spawn process request added to outbox"
  return h
end

function Assign(assignment)
  ao.assign(assignment)
  return "Assignment added to outbox."
end

function Receive(match)
  return Handlers.receive(match)
end

-- --------------------------------------------------------- built-in handlers

local function run_lua(code)
  local f, err = load("return " .. code, "aos", "t", _G)
  if not f then
    f, err = load(code, "aos", "t", _G)
  end
  if not f then
    error(err, 0)
  end
  return f()
end

local function eval_handler(msg)
  local out = run_lua(msg.Data or "")
  if out ~= nil then
    print(out)
  end
end

local function boot_handler(msg)
  local boot = msg.Tags["On-Boot"]
  if boot == "Data" then
    run_lua(msg.Data or "")
  elseif boot then
    if not io then -- the CU offers no WeaveDrive
      print("On-Boot=" .. boot .. " needs WeaveDrive, which this compute unit does not offer")
      return
    end
    local f = io.open("/data/" .. boot) -- aos boot loader: the On-Boot item is always admissible
    local source = f:read("a")
    f:close()
    run_lua(source)
  end
end

local function short(id)
  id = tostring(id or "unknown")
  if #id <= 8 then
    return id
  end
  return id:sub(1, 3) .. "..." .. id:sub(-3)
end

local function default_handler(msg)
  table.insert(Inbox, msg)
  while #Inbox > MAX_INBOX do
    table.remove(Inbox, 1)
  end
  local what
  if msg.Action then
    what = "Action = " .. tostring(msg.Action):sub(1, 20)
  else
    local data = msg.Data
    if type(data) == "table" then
      data = json.encode(data)
    end
    what = "Data = " .. tostring(data or ""):sub(1, 20)
  end
  print("New Message From " .. short(msg.From) .. ": " .. what)
end

-- --------------------------------------------------------------- per message

-- Names that utils.normalize leaves as they are (the CU's msg fields and common
-- tags): they skip the call, which changes nothing but the time taken.
local NORMAL = {}
for _, k in ipairs({
  "Id", "Signature", "Data", "Owner", "Anchor", "From", "Forwarded-By", "Tags", "Target", "Epoch", "Nonce",
  "Timestamp", "Block-Height", "Hash-Chain", "Cron", "Read-Only", "Module", "Data-Protocol", "Variant", "Type",
  "Action", "Recipient", "Quantity", "Reference", "X-Reference", "Content-Type", "Name", "Ticker",
  "Sender", "Pushed-For", "From-Process", "From-Module", "Reply-To", "X-Origin", "Cast", "Authority",
}) do
  NORMAL[k] = true
end
local default_normalize = utils.normalize
local fresh_msg_normal = private and private.fresh_msg_normal -- see _host.lua; nil when loaded by Eval
if private then
  private.set_normal_names(NORMAL)
end

local library_ao_normalize = ao.normalize -- (ao.lua's own; a process may replace it)
local kept_names = private and private.kept_names -- ao.lua's set of ao.nonExtractableTags; nil when loaded by Eval

-- What normalise (below) does to a msg the host has just built (fresh_msg_normal)
-- while ao.normalize is still ao.lua's own: its Tags are the host's list of
-- {name, value} tables (or none), so the three walks over them (names
-- normalised, ao.normalize copying them onto msg, the name -> value map) are
-- one, in the same order per tag. ("Tags" is one of the kept names here, so
-- no copy onto msg replaces the list being walked.)
local function normalise_fresh(msg, known, normalize, kept)
  local tags = msg.Tags
  if tags == nil then
    tags = {}
    msg.Tags = tags
  end
  -- (room for four tags at once, as below)
  local map = { ["\0room1"] = nil, ["\0room2"] = nil, ["\0room3"] = nil, ["\0room4"] = nil }
  local i, t = 1, tags[1]
  while t ~= nil do
    local name = t.name
    if not known[name] then
      name = normalize(name)
      t.name = name
    end
    local value = t.value
    if not kept[name] then
      msg[name] = value
    end
    if map[name] == nil then
      map[name] = value
    end
    i = i + 1
    t = tags[i]
  end
  msg.TagArray = tags
  msg.Tags = map
  if map["Content-Type"] == "application/json" then
    local ok, data = pcall(json.decode, msg.Data or "{}")
    if ok then
      msg.Data = data
    end
  end
end

-- (The loops over lists below are `while` loops over t[i] until nil: what
-- ipairs does, without a call into C for every element.)
local function normalise(msg, env)
  local normalize = utils.normalize
  local known = normalize == default_normalize and NORMAL or {}
  -- keys to rename, applied in sorted order (which decides between two keys
  -- that normalise to the same name)
  local keys, nkeys = nil, 0 -- (made only when there is a key to rename)
  -- no key to rename when the host built msg from field names all in NORMAL and nothing touched it since
  local walk = not (known == NORMAL and fresh_msg_normal and fresh_msg_normal(msg))
  if not walk and ao.normalize == library_ao_normalize and kept_names then
    local kept = kept_names()
    if kept.Tags then
      return normalise_fresh(msg, known, normalize, kept)
    end
  end
  if not walk then
    nkeys = 0
  elseif unordered_next then
    for k in unordered_next, msg do
      if not known[k] and type(k) == "string" and normalize(k) ~= k then
        keys = keys or {}
        nkeys = nkeys + 1
        keys[nkeys] = k
      end
    end
    if nkeys > 1 then
      table.sort(keys)
    end
  else
    keys = {}
    for k in pairs(msg) do
      nkeys = nkeys + 1
      keys[nkeys] = k
    end
  end
  for i = 1, nkeys do
    local k = keys[i]
    local nk = normalize(k)
    if nk ~= k then
      msg[nk], msg[k] = msg[k], nil
    end
  end
  msg.Tags = msg.Tags or {}
  local tags = msg.Tags
  if type(tags) == "table" then
    local i, t = 1, tags[1]
    while t ~= nil do
      local name = t.name
      if not known[name] then
        t.name = normalize(name)
      end
      i = i + 1
      t = tags[i]
    end
  else
    for _, t in ipairs(tags) do
      local name = t.name
      if not known[name] then
        t.name = normalize(name)
      end
    end
  end
  ao.normalize(msg)
  msg.TagArray = msg.Tags
  -- the constructor makes room for four tags at once (keys with nil values are
  -- no keys at all to Lua: next, pairs and # never see them), so the first
  -- tags do not each make the table grow
  local map = { ["\0room1"] = nil, ["\0room2"] = nil, ["\0room3"] = nil, ["\0room4"] = nil }
  tags = msg.TagArray
  if type(tags) == "table" then
    local i, t = 1, tags[1]
    while t ~= nil do
      local name = t.name
      if map[name] == nil then
        map[name] = t.value
      end
      i = i + 1
      t = tags[i]
    end
  else
    for _, t in ipairs(tags) do
      if map[t.name] == nil then
        map[t.name] = t.value
      end
    end
  end
  msg.Tags = map
  if map["Content-Type"] == "application/json" then
    local ok, data = pcall(json.decode, msg.Data or "{}")
    if ok then
      msg.Data = data
    end
  end
end

local function first_tag(tags, name)
  for _, t in ipairs(tags or {}) do
    if t.name == name then
      return t.value
    end
  end
  return nil
end

local function attach_reply(msg)
  msg.reply = function(reply)
    reply.Target = msg["Reply-To"] or reply.Target or msg.From
    reply["X-Reference"] = msg["X-Reference"] or msg.Reference
    reply["X-Origin"] = msg["X-Origin"]
    return ao.send(reply)
  end
  msg.forward = function(target, extra)
    local fwd = ao.sanitize(msg)
    for k, v in pairs(extra or {}) do
      fwd[k] = v
    end
    fwd.Target = target
    fwd["Reply-To"] = msg["Reply-To"] or msg.From
    fwd["X-Reference"] = msg["X-Reference"] or msg.Reference
    fwd["X-Origin"] = msg["X-Origin"] or msg.From
    fwd.reply, fwd.forward = nil, nil
    return ao.send(fwd)
  end
end

--- Eval is allowed from the Owner, or from an Authority address (From).
local function may_eval(msg)
  if msg.From == Owner then
    return true
  end
  for _, a in ipairs(ao.authorities) do
    if msg.From == a then
      return true
    end
  end
  return false
end

local function is_eval(m)
  return m.Action == "Eval" and may_eval(m)
end

local function always()
  return true
end

-- Are "_eval" and "_default" there already, each (the first of its name)
-- exactly as `add` would leave it? One walk for both.
local function builtins_installed()
  local list = Handlers.list
  local i, h = 1, list[1]
  local eval_ok, default_ok = false, false
  while h ~= nil do
    local name = h.name
    if name == "_eval" and not eval_ok then
      if not (h.pattern == is_eval and h.handle == eval_handler and h.maxRuns == nil) then
        return false
      end
      if default_ok then
        return true
      end
      eval_ok = true
    elseif name == "_default" and not default_ok then
      if not (h.pattern == always and h.handle == default_handler and h.maxRuns == nil) then
        return false
      end
      if eval_ok then
        return true
      end
      default_ok = true
    end
    i = i + 1
    h = list[i]
  end
  return false
end

local function install_builtins(msg, env)
  if not builtins_installed() then
    Handlers.add("_eval", is_eval, eval_handler)
    Handlers.append("_default", always, default_handler)
  end
  if msg.Id == env.Process.Id then
    Handlers.once("_boot", function(m)
      return m.Tags.Type == "Process" and Owner == m.From
    end, boot_handler)
  end
end

-- The result's parts, in the order the result table's constructor evaluated
-- them: the Output's data and prompt, then the outbox's Messages, Spawns and
-- Assignments (handle_parts, below, hands them to the VM without the table).
local function result_parts()
  return table.concat(logs, "\n", 1, logs.n), Prompt(), ao.outbox.Messages, ao.outbox.Spawns, ao.outbox.Assignments
end

-- the body of each message's coroutine (takes msg, env from resume)
local function evaluate(msg, env)
  return Handlers.evaluate(msg, env)
end

-- One message: the result's parts (see result_parts), or a table {Error = text}
-- when the handlers failed.
local function handle_parts(msg, env)
  local n = logs.n
  if n <= 64 then -- (the same table, emptied: no new table per message)
    for i = 1, n do
      logs[i] = nil
    end
    logs.n = 0
  else
    logs = { n = 0 }
  end
  ao.init(env)
  normalise(msg, env)
  if msg.Id == env.Process.Id and Owner == nil then
    Owner = first_tag(env.Process.Tags, "From-Process") or msg.From
  end
  if Name == nil then
    Name = first_tag(env.Process.Tags, "Name") or "aos"
  end
  if msg.From ~= msg.Owner and not ao.isTrusted(msg) then
    print("Message is not trusted! From: " .. tostring(msg.From) .. " - Owner: " .. tostring(msg.Owner))
    return result_parts()
  end
  install_builtins(msg, env)
  attach_reply(msg)
  local ok, err
  if run_handlers then
    ok, err = run_handlers(evaluate, msg, env)
  else
    ok, err = coroutine.resume(coroutine.create(evaluate), msg, env)
  end
  if not ok then
    local text = tostring(err)
    table.insert(Errors, text)
    local printed = table.concat(logs, "\n", 1, logs.n)
    return { Error = (printed ~= "" and printed .. "\n\n" or "") .. "error:\n" .. text }
  end
  return result_parts()
end

--- The result table {Output, Messages, Spawns, Assignments} or {Error}.
function process.handle(msg, env)
  local data, prompt, messages, spawns, assignments = handle_parts(msg, env)
  if type(data) == "table" then
    return data
  end
  return {
    Output = { data = data, prompt = prompt, print = true },
    Messages = messages,
    Spawns = spawns,
    Assignments = assignments,
  }
end
if private then
  private.handle_parts = handle_parts -- what the VM calls (see _host.lua, step)
end

return process
