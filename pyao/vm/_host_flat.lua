-- Host side of the native Lua VM, part 3: results as flat values.
--
-- Contract: loaded by _host.lua with the real base functions as its env;
-- returns flat_result(r, out, no) and MAX_FLAT. flat_result appends r's flat
-- form at out[no + 1 ...] and returns the new end, or nil when r has a shape
-- the flat form does not carry (the caller then sends r as JSON).

local d_getmetatable, mtype = debug_getmetatable, math.type

-- A result as flat values, appended to `out` (see host.handle_batch). Its
-- strings travel together: "S", then every string of the result joined with
-- "\0" (one value to cross and one to decode, instead of one per string), then
-- the shape as integers: Messages and Spawns (count, then per item its flags
-- (1 Anchor, 2 Data, 4 Target present) and tag count (-1: no Tags)), then
-- Assignments (count, then per item its process count). The strings, in
-- order: Output data, prompt, then per item Anchor, Data, tag names and
-- values, Target (those present), then per assignment Message and processes.
-- Should a string hold "\0" itself, "P" replaces "S" and the joined string:
-- the number of strings, then the strings one by one. Or "E", the error text.
-- A result of any other shape (a process that rewrote its outbox) goes as
-- "J", its JSON text, exactly as before the flat form existed.
local MSG_KEYS = { Anchor = true, Data = true, Target = true, Tags = true }
local MAX_FLAT = 100000 -- values per result, and per batch, returned flat (Lua's stack holds 1,000,000)
local RESULT_KEYS = { Output = true, Messages = true, Spawns = true, Assignments = true, Error = true }
local tconcat, find = table.concat, string.find

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

-- One message or spawn: its strings into parts (from np), its flags and tag
-- count into shape (from ns). Returns the new np, ns, or nil.
local function flat_item(m, parts, np, shape, ns)
  if type(m) ~= "table" or d_getmetatable(m) ~= nil then
    return nil
  end
  local keys = 0
  for k, v in next, m do
    if not MSG_KEYS[k] or (k ~= "Tags" and type(v) ~= "string") then
      return nil
    end
    keys = keys + 1
  end
  if keys == 0 then
    return nil
  end
  local anchor, data, target, tags = m.Anchor, m.Data, m.Target, m.Tags
  local flags, nt = 0, -1
  if anchor then
    flags, np = 1, np + 1
    parts[np] = anchor
  end
  if data then
    flags, np = flags + 2, np + 1
    parts[np] = data
  end
  if tags ~= nil then
    nt = plain_list(tags)
    if nt == nil then
      return nil
    end
    for i = 1, nt do
      local t = tags[i]
      if type(t) ~= "table" or d_getmetatable(t) ~= nil then
        return nil
      end
      local name, value = t.name, t.value
      if type(name) ~= "string" or type(value) ~= "string" or next(t, next(t, next(t))) ~= nil then
        return nil
      end
      parts[np + 1], parts[np + 2] = name, value
      np = np + 2
    end
  end
  if target then
    flags, np = flags + 4, np + 1
    parts[np] = target
  end
  shape[ns + 1], shape[ns + 2] = flags, nt
  return np, ns + 2
end

local function flat_list(list, parts, np, shape, ns)
  local n = plain_list(list)
  if n == nil then
    return nil
  end
  ns = ns + 1
  shape[ns] = n
  for i = 1, n do
    np, ns = flat_item(list[i], parts, np, shape, ns)
    if np == nil then
      return nil
    end
  end
  return np, ns
end

local function flat_assignments(list, parts, np, shape, ns)
  local n = plain_list(list)
  if n == nil then
    return nil
  end
  ns = ns + 1
  shape[ns] = n
  for i = 1, n do
    local a = list[i]
    if type(a) ~= "table" or d_getmetatable(a) ~= nil or type(a.Message) ~= "string" then
      return nil
    end
    local procs = a.Processes
    local nprocs = plain_list(procs)
    if nprocs == nil or next(a, next(a, next(a))) ~= nil then
      return nil
    end
    np = np + 1
    parts[np] = a.Message
    ns = ns + 1
    shape[ns] = nprocs
    for j = 1, nprocs do
      if type(procs[j]) ~= "string" then
        return nil
      end
      np = np + 1
      parts[np] = procs[j]
    end
  end
  return np, ns
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
  local parts, shape = { o.data, o.prompt }, {}
  local np, ns = flat_list(r.Messages, parts, 2, shape, 0)
  if np then
    np, ns = flat_list(r.Spawns, parts, np, shape, ns)
  end
  if np then
    np, ns = flat_assignments(r.Assignments, parts, np, shape, ns)
  end
  if np == nil then
    return nil
  end
  if find(tconcat(parts, "", 1, np), "\0", 1, true) then -- "\0" cannot be the separator: one by one
    out[no + 1], out[no + 2] = "P", np
    no = no + 2
    for i = 1, np do
      out[no + i] = parts[i]
    end
    no = no + np
  else
    out[no + 1], out[no + 2] = "S", tconcat(parts, "\0", 1, np)
    no = no + 2
  end
  for i = 1, ns do
    out[no + i] = shape[i]
  end
  return no + ns
end

return { flat_result = flat_result, MAX_FLAT = MAX_FLAT }
