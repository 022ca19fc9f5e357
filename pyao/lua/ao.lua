-- ao: the process's view of the ao network: its id, module, authorities, and
-- the outbox (Messages, Spawns, Assignments, Output) that becomes the result.

local _, private = ...
local unordered_next = private and private.unordered_next -- see _host.lua; nil when loaded by Eval
local gmatch = private and private.gmatch or string.gmatch -- raw: the patterns here are linear
local find = private and private.find or string.find
local format = private and private.format or string.format -- raw: only numbers are formatted here
local mtype = math.type

-- s without leading and trailing white space, in linear time
local function trim(s)
  local a = find(s, "%S")
  if not a then
    return ""
  end
  local b = #s
  while find(s, "^%s", b) do
    b = b - 1
  end
  return s:sub(a, b)
end
local json = require("json")

local ao = {
  _version = "pyao-1",
  id = "",
  _module = "",
  authorities = {},
  reference = 0,
  outbox = { Output = {}, Messages = {}, Spawns = {}, Assignments = {} },
  -- tags that stay in msg.Tags and are not copied onto msg
  nonExtractableTags = {
    "Data-Protocol", "Variant", "From-Process", "From-Module", "Type", "From", "Owner", "Anchor", "Target", "Data",
    "Tags", "Read-Only",
  },
  -- keys msg.forward does not carry over
  nonForwardableTags = {
    "Data-Protocol", "Variant", "From-Process", "From-Module", "Type", "From", "Owner", "Anchor", "Target", "Tags",
    "TagArray", "Hash-Chain", "Timestamp", "Nonce", "Epoch", "Signature", "Forwarded-By", "Pushed-For", "Read-Only",
    "Cron", "Block-Height", "Reference", "Id", "Reply-To",
  },
}

local function member(list, value)
  local i, v = 1, list[1]
  while v ~= nil do -- ipairs, without a call into C per element
    if v == value then
      return true
    end
    i = i + 1
    v = list[i]
  end
  return false
end

local function tag_value(v)
  local ty = type(v)
  if ty == "string" then
    return v
  elseif ty == "number" or ty == "boolean" then
    return tostring(v)
  end
  error("tag values must be strings, got a " .. ty, 3)
end

local RESERVED = { Target = true, Data = true, Anchor = true, Tags = true, From = true }
-- what a key of a message-like table is to collect_tags: 1, reserved; 2, a tag name
-- met often (a string: no type() call to tell); nil, any other key
local KEY_KIND = { Target = 1, Data = 1, Anchor = 1, Tags = 1, From = 1 }
for _, name in ipairs({
  "Action", "Recipient", "Quantity", "Sender", "Reference", "X-Reference", "X-Origin", "Error", "Message-Id",
  "Balance", "Ticker", "Account", "Name", "Logo", "Denomination", "Content-Type", "Pushed-For", "Cast", "Type",
  "Module", "Authority", "Data-Protocol", "Variant", "Reply-To",
}) do
  KEY_KIND[name] = 2
end
local spare_keys -- collect_tags' list of keys, empty between uses (nil while one is under way)

-- {name, value} list from a message-like table: every key but the reserved
-- ones, then msg.Tags (a list of {name, value} or a name -> value map).
local function collect_tags(into, msg)
  if unordered_next and getmetatable(msg) == nil then
    -- the string keys in sorted order, as pairs gives them, without pairs' general work
    -- (the same keys table every time; a call from inside this one, should tag_value's
    -- tostring be process code that sends, makes its own)
    local keys = spare_keys or { nil, nil, nil, nil } -- (room for four keys at once: no growing)
    spare_keys = nil
    local nkeys = 0
    for k in unordered_next, msg do
      local kind = KEY_KIND[k]
      if kind == 2 or (kind == nil and type(k) == "string") then
        nkeys = nkeys + 1
        keys[nkeys] = k
      end
    end
    if nkeys > 1 then
      table.sort(keys)
    end
    local n = #into
    for i = 1, nkeys do
      local k = keys[i]
      keys[i] = nil -- (emptied as it goes: the table is used again)
      local v = msg[k] -- no metatable: a raw read
      local ty = type(v)
      if ty == "string" then
        n = n + 1
        into[n] = { name = k, value = v }
      elseif ty ~= "function" then
        n = n + 1
        into[n] = { name = k, value = tag_value(v) }
      end
    end
    spare_keys = keys
  else
    for k, v in pairs(msg) do
      if type(k) == "string" and not RESERVED[k] and type(v) ~= "function" then
        into[#into + 1] = { name = k, value = tag_value(v) }
      end
    end
  end
  local tags = msg.Tags
  if tags and type(tags) == "table" then -- (no Tags, the common case: no call)
    local empty
    if unordered_next then
      empty = unordered_next(tags) == nil
    else
      empty = next(tags) == nil
    end
    if #tags > 0 or empty then
      for _, t in ipairs(tags) do
        into[#into + 1] = { name = t.name, value = tag_value(t.value) }
      end
    else
      for k, v in pairs(tags) do
        into[#into + 1] = { name = k, value = tag_value(v) }
      end
    end
  end
  return into
end

local function data_of(msg, default)
  local data = msg.Data
  local ty = type(data)
  if ty == "string" then
    return data, false
  elseif ty == "table" then
    return json.encode(data), true
  elseif data == nil then
    return default, false
  end
  return tostring(data), false
end

-- An Authority tag's value split at commas and trimmed, for the last value
-- seen (ao.init runs for every message, nearly always with the same tags).
local authority_text, authority_parts

local function authority_list(value)
  if value ~= authority_text or authority_parts == nil or type(value) ~= "string" then
    local parts = {}
    for part in gmatch(value, "[^,]+") do
      parts[#parts + 1] = trim(part)
    end
    authority_text, authority_parts = value, parts
  end
  return authority_parts
end

local function init_tag(t, authorities)
  local name = t.name
  if name == "Module" then
    ao._module = t.value
  elseif name == "Authority" then
    local parts = authority_list(t.value)
    for j = 1, #parts do
      local part = parts[j]
      if part ~= "" and not member(authorities, part) then
        authorities[#authorities + 1] = part
      end
    end
  end
end

function ao.init(env)
  ao.id = env.Process.Id
  ao._module = ""
  local authorities = { nil, nil } -- (room for two: the first one added does not make it grow)
  ao.authorities = authorities
  local tags = env.Process.Tags or {}
  if type(tags) ~= "table" then
    for _, t in ipairs(tags) do
      init_tag(t, authorities)
    end
  else
    local i, t = 1, tags[1]
    while t ~= nil do -- (init_tag, inlined)
      local name = t.name
      if name == "Module" then
        ao._module = t.value
      elseif name == "Authority" then
        local parts = authority_list(t.value)
        for j = 1, #parts do
          local part = parts[j]
          if part ~= "" then
            local k, a = 1, authorities[1]
            while a ~= nil and a ~= part do -- (member, inlined)
              k = k + 1
              a = authorities[k]
            end
            if a == nil then
              authorities[#authorities + 1] = part
            end
          end
        end
      end
      i = i + 1
      t = tags[i]
    end
  end
  ao.env = env
  ao.clearOutbox()
end

function ao.clearOutbox()
  -- (Messages with room for two at once: nil slots are no elements, #Messages is 0)
  ao.outbox = { Output = {}, Messages = { nil, nil }, Spawns = {}, Assignments = {} }
end

-- The set of ao.nonExtractableTags, rebuilt only when the list changed
-- (checked element by element: no allocation in the common case).
local kept_list, kept_seen, kept_set

local DEFAULT_LIST = ao.nonExtractableTags -- (the table itself; another one takes the general way below)
local DEFAULT_KEPT = {} -- the set of the default list (below, at the end of this file)

local function kept_names()
  local list = ao.nonExtractableTags
  if list == DEFAULT_LIST and list[1] == "Data-Protocol" and list[2] == "Variant" and list[3] == "From-Process" and list[4] == "From-Module"
    and list[5] == "Type" and list[6] == "From" and list[7] == "Owner" and list[8] == "Anchor" and list[9] == "Target"
    and list[10] == "Data" and list[11] == "Tags" and list[12] == "Read-Only" and list[13] == nil then
    return DEFAULT_KEPT -- (the default list, compared constant by constant: no loop)
  end
  if list == kept_list and kept_set ~= nil then
    local i, name = 1, list[1]
    while name ~= nil and name == kept_seen[i] do
      i = i + 1
      name = list[i]
    end
    if name == nil and kept_seen[i] == nil then
      return kept_set
    end
  end
  local kept, seen, n = {}, {}, 0
  for _, name in ipairs(list) do
    if name == name then -- a NaN cannot be a key (and equals no tag name)
      kept[name] = true
    end
    n = n + 1
    seen[n] = name
  end
  kept_list, kept_seen, kept_set = list, seen, kept
  return kept
end

if private then
  private.kept_names = kept_names -- (process.lua's normalise, for a msg the host has just built)
end

function ao.normalize(msg)
  local kept = kept_names()
  local tags = msg.Tags
  if type(tags) ~= "table" then
    for _, t in ipairs(tags) do
      if not kept[t.name] then
        msg[t.name] = t.value
      end
    end
    return msg
  end
  local i, t = 1, tags[1]
  while t ~= nil do
    local name = t.name
    if not kept[name] then
      msg[name] = t.value
    end
    i = i + 1
    t = tags[i]
  end
  return msg
end

function ao.clone(v, seen)
  if type(v) ~= "table" then
    return v
  end
  seen = seen or {}
  if seen[v] then
    return seen[v]
  end
  local c = {}
  seen[v] = c
  for k, x in pairs(v) do
    c[ao.clone(k, seen)] = ao.clone(x, seen)
  end
  return setmetatable(c, getmetatable(v))
end

function ao.sanitize(msg)
  local c = ao.clone(msg)
  for _, k in ipairs(ao.nonForwardableTags) do
    c[k] = nil
  end
  return c
end

--- A message or authority is trusted when From or Owner is one of the
--- process's Authority addresses.
function ao.isTrusted(msg)
  for _, a in ipairs(ao.authorities) do
    if msg.From == a or msg.Owner == a then
      return true
    end
  end
  return false
end

-- "0" * n for n = 0..31: an Anchor is the reference's digits after 32 - #digits zeros
local ZEROS = {}
for n = 0, 31 do
  ZEROS[n] = string.rep("0", n)
end

-- the new reference, as text, and the Anchor
local function next_reference()
  ao.reference = ao.reference + 1
  local ref = ao.reference
  if mtype(ref) == "integer" and ref >= 0 then
    local text = format("%d", ref)
    local zeros = ZEROS[32 - #text]
    return ref, text, zeros and zeros .. text or text -- (format("%032d", ref), without a second format)
  end
  local anchor = format("%032d", ref)
  return ref, mtype(ref) == "integer" and format("%d", ref) or tostring(ref), anchor
end

function ao.send(msg)
  if type(msg) ~= "table" then
    error("Send: the message must be a table", 0) -- (assert's error: no position)
  end
  -- (next_reference and data_of(msg, nil), written out: a Transfer sends twice)
  ao.reference = ao.reference + 1
  local ref = ao.reference
  local refs, anchor
  if mtype(ref) == "integer" and ref >= 0 then
    refs = format("%d", ref)
    local zeros = ZEROS[32 - #refs]
    anchor = zeros and zeros .. refs or refs
  else
    anchor = format("%032d", ref)
    refs = mtype(ref) == "integer" and format("%d", ref) or tostring(ref)
  end
  local data, is_json = msg.Data, false
  local ty = type(data)
  if ty == "table" then
    data, is_json = json.encode(data), true
  elseif ty ~= "string" and data ~= nil then
    data = tostring(data)
  end
  local tags = { -- (with room for four more tags at once: the nils are no elements, #tags is 4)
    { name = "Data-Protocol", value = "ao" },
    { name = "Variant", value = "ao.TN.1" },
    { name = "Type", value = "Message" },
    { name = "Reference", value = refs },
    nil, nil, nil, nil,
  }
  collect_tags(tags, msg)
  if is_json and msg["Content-Type"] == nil then
    tags[#tags + 1] = { name = "Content-Type", value = "application/json" }
  end
  local message = { Target = msg.Target, Data = data, Anchor = anchor, Tags = tags }
  local messages = ao.outbox.Messages
  messages[#messages + 1] = message -- table.insert(messages, message), without the call
  -- (made with all its fields at once: a table of six slots' room, which Send's
  -- `output` then fits too, instead of four that the functions outgrow)
  local handle = {
    Target = msg.Target,
    Data = data,
    Anchor = anchor,
    Tags = tags,
    onReply = function(...)
      local from, fn = msg.Target, ...
      if select("#", ...) == 2 then
        from, fn = ...
      end
      Handlers.once({ From = from, ["X-Reference"] = refs }, fn)
    end,
    receive = function(from)
      return Handlers.receive({ From = from or msg.Target, ["X-Reference"] = refs })
    end,
  }
  return handle
end

function ao.spawn(module, msg)
  assert(type(module) == "string", "Spawn: a module id is required")
  assert(type(msg) == "table", "Spawn: the message must be a table")
  local _, refs, anchor = next_reference()
  local data = data_of(msg, "NODATA")
  local tags = {
    { name = "Data-Protocol", value = "ao" },
    { name = "Variant", value = "ao.TN.1" },
    { name = "Type", value = "Process" },
    { name = "From-Process", value = ao.id },
    { name = "From-Module", value = ao._module },
    { name = "Module", value = module },
    { name = "Reference", value = refs },
  }
  collect_tags(tags, msg)
  table.insert(ao.outbox.Spawns, { Data = data, Anchor = anchor, Tags = tags })
  local spawned = { Action = "Spawned", From = ao.id, Reference = refs }
  local handle = { Data = data, Anchor = anchor, Tags = tags }
  function handle.onReply(fn)
    Handlers.once(spawned, fn)
  end
  function handle.after(fn)
    Handlers.once(spawned, fn)
  end
  function handle.receive()
    return Handlers.receive(spawned)
  end
  return handle
end

function ao.assign(assignment)
  assert(type(assignment) == "table", "Assign: the assignment must be a table")
  assert(type(assignment.Processes) == "table", "Assign: Processes must be a list")
  assert(type(assignment.Message) == "string", "Assign: Message must be a string")
  local processes = {}
  for i, p in ipairs(assignment.Processes) do
    processes[i] = tostring(p)
  end
  table.insert(ao.outbox.Assignments, { Processes = processes, Message = assignment.Message })
end

for _, name in ipairs(ao.nonExtractableTags) do
  DEFAULT_KEPT[name] = true
end

return ao
