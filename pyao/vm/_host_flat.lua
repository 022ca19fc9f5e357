-- Host side of the native Lua VM, part 3: results as flat values.
--
-- Contract: loaded by _host.lua with the real base functions as its env;
-- returns flat_result(r, out, no) and MAX_FLAT. flat_result appends r's flat
-- form at out[no + 1 ...] and returns the new end, or nil when r has a shape
-- the flat form does not carry (the caller then sends r as JSON).

local d_getmetatable, mtype = debug_getmetatable, math.type

-- A result as flat values, appended to `out` (see host.handle_batch): "F",
-- data, prompt, then Messages and Spawns (count, then per item Anchor, Data,
-- Target (false when absent), tag count (-1: no Tags), names and values), then
-- Assignments (count, then per item Message, process count, processes); or "E",
-- the error text. A result of any other shape (a process that rewrote its
-- outbox) goes as "J", its JSON text, exactly as before the flat form existed.
local MSG_KEYS = { Anchor = true, Data = true, Target = true, Tags = true }
local MAX_FLAT = 100000 -- values per result, and per batch, returned flat (Lua's stack holds 1,000,000)
local RESULT_KEYS = { Output = true, Messages = true, Spawns = true, Assignments = true, Error = true }

local function plain_list(t) -- a table JSON writes as an array: keys exactly 1..n, no metatable
  if type(t) ~= "table" or d_getmetatable(t) ~= nil then
    return nil
  end
  local n, count = rawlen(t), 0
  for k in next, t do
    count = count + 1
    if mtype(k) ~= "integer" or k < 1 or k > n then
      return nil
    end
  end
  return count == n and n or nil
end

local function flat_item(m, out, no)
  if type(m) ~= "table" or d_getmetatable(m) ~= nil or next(m) == nil then
    return nil
  end
  for k, v in next, m do
    if not MSG_KEYS[k] or (k ~= "Tags" and type(v) ~= "string") then
      return nil
    end
  end
  local tags = m.Tags
  local nt = -1
  if tags ~= nil then
    nt = plain_list(tags)
    if nt == nil then
      return nil
    end
  end
  out[no + 1], out[no + 2], out[no + 3], out[no + 4] = m.Anchor or false, m.Data or false, m.Target or false, nt
  no = no + 4
  for i = 1, nt do
    local t = tags[i]
    if type(t) ~= "table" or d_getmetatable(t) ~= nil then
      return nil
    end
    local name, value = t.name, t.value
    if type(name) ~= "string" or type(value) ~= "string" or next(t, next(t, next(t))) ~= nil then
      return nil
    end
    out[no + 1], out[no + 2] = name, value
    no = no + 2
  end
  return no
end

local function flat_list(list, out, no)
  local n = plain_list(list)
  if n == nil then
    return nil
  end
  no = no + 1
  out[no] = n
  for i = 1, n do
    no = flat_item(list[i], out, no)
    if no == nil then
      return nil
    end
  end
  return no
end

local function flat_assignments(list, out, no)
  local n = plain_list(list)
  if n == nil then
    return nil
  end
  no = no + 1
  out[no] = n
  for i = 1, n do
    local a = list[i]
    if type(a) ~= "table" or d_getmetatable(a) ~= nil or type(a.Message) ~= "string" then
      return nil
    end
    local procs = a.Processes
    local np = plain_list(procs)
    if np == nil or next(a, next(a, next(a))) ~= nil then
      return nil
    end
    out[no + 1], out[no + 2] = a.Message, np
    no = no + 2
    for j = 1, np do
      if type(procs[j]) ~= "string" then
        return nil
      end
      no = no + 1
      out[no] = procs[j]
    end
  end
  return no
end

-- Appends r's flat form at out[no + 1 ...]; returns the new end, or nil (then
-- out past `no` is garbage to overwrite).
local function flat_result(r, out, no)
  for k in next, r do -- a key JSON would write that the flat form does not carry
    if not RESULT_KEYS[k] then
      return nil
    end
  end
  if r.Error ~= nil then
    if type(r.Error) ~= "string" then
      return nil
    end
    out[no + 1], out[no + 2] = "E", r.Error
    return no + 2
  end
  local o = r.Output
  if type(o) ~= "table" or d_getmetatable(o) ~= nil or type(o.data) ~= "string" or type(o.prompt) ~= "string"
    or o.print ~= true or next(o, next(o, next(o, next(o)))) ~= nil then
    return nil
  end
  out[no + 1], out[no + 2], out[no + 3] = "F", o.data, o.prompt
  no = flat_list(r.Messages, out, no + 3)
  no = no and flat_list(r.Spawns, out, no)
  return no and flat_assignments(r.Assignments, out, no)
end

return { flat_result = flat_result, MAX_FLAT = MAX_FLAT }
