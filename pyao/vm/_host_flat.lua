-- Host side of the native Lua VM, part 3: results as flat values.
--
-- Contract: loaded by _host.lua with the real base functions as its env;
-- returns flat_result(r, out, no), MAX_FLAT, reset() (at the start of every
-- batch) and kept_parts(key) (below). flat_result appends r's flat
-- form at out[no + 1 ...] and returns the new end, or nil when r has a shape
-- the flat form does not carry (the caller then sends r as JSON).

local d_getmetatable = debug_getmetatable
local type, next, rawlen, pcall = type, next, rawlen, pcall -- (upvalues: no lookup in the env per use)

-- A result as flat values, appended to `out` (see host.handle_batch). Its
-- strings travel together: "S", then every string of the result joined with
-- "\0" (one value to cross and one to decode, instead of one per string), the
-- number of strings, the key to ask kept_parts for them one by one (below),
-- the number of integers that follow, then the shape as integers: Messages and Spawns (count, then per item its
-- flags (1 Anchor, 2 Data, 4 Target present) and tag count (-1: no Tags)),
-- then Assignments (count, then per item its process count). The strings, in
-- order: Output data, prompt, then per item Anchor, Data, tag names and
-- values, Target (those present), then per assignment Message and processes.
-- Or "E", the error text.
-- A result of any other shape (a process that rewrote its outbox) goes as
-- "J", its JSON text, exactly as before the flat form existed.
local MSG_KEYS = { Anchor = true, Data = true, Target = true, Tags = true }
local MAX_FLAT = 100000 -- values per result, and per batch, returned flat (Lua's stack holds 1,000,000)
local RESULT_KEYS = { Output = true, Messages = true, Spawns = true, Assignments = true, Error = true }
local tconcat, tunpack = table.concat, table.unpack

-- The strings of this batch's results, one after the other in `strs` (a
-- result's are strs[first .. last]), kept until the next batch: should one of
-- them hold "\0", the joined string splits into more pieces than it has
-- strings, and the VM asks for them one by one (kept_parts(first, last)).
-- Only strings are kept, so what comes back is what was joined. One table
-- for the whole batch, emptied when the next one starts.
local strs, nstrs = {}, 0

local function reset()
  for i = #strs, 1, -1 do
    strs[i] = nil
  end
  nstrs = 0
end

local function kept_parts(first, last)
  return tunpack(strs, first, last)
end

-- in_order: a list is walked with next and taken only when its keys come as
-- 1, 2, 3, ... and nothing else: then it is exactly the sequence 1..n, which
-- JSON writes as an array, as plain_list below (a sequence whose keys sit in
-- the table's hash part may come in another order: it then goes as JSON, which
-- gives the same result, only slower). One walk instead of a count and a loop.

-- A table JSON writes as an array: keys exactly 1..n, no metatable. Counting
-- the keys is enough here: every caller then refuses a nil among t[1..n] (a
-- string is expected there), and n keys with none of 1..n missing are 1..n.
local function plain_list(t)
  if d_getmetatable(t) ~= nil then -- (not a table: rawlen raises, see flat_item)
    return nil
  end
  local n, count = rawlen(t), 0
  for _ in next, t do
    count = count + 1
  end
  return count == n and n or nil
end

-- One message or spawn: its strings into strs after np, its flags and tag
-- count into out after no. Returns the new np, no, or nil. Runs under
-- flat_result's pcall: a value that is not a table where one is read (a tag
-- that is a number, say) raises, which means "not flat" too; only values with
-- no metatable are read, so no metamethod runs here.
local function flat_item(m, np, out, no)
  if d_getmetatable(m) ~= nil then
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
    strs[np] = anchor
  end
  if data then
    flags, np = flags + 2, np + 1
    strs[np] = data
  end
  if tags ~= nil then
    if d_getmetatable(tags) ~= nil then
      return nil
    end
    nt = 0
    for i, t in next, tags do -- keys exactly 1, 2, ... in order (see in_order); each tag {name, value}
      nt = nt + 1
      if i ~= nt or d_getmetatable(t) ~= nil then
        return nil
      end
      local name, value = t.name, t.value
      if type(name) ~= "string" or type(value) ~= "string" or next(t, next(t, next(t))) ~= nil then
        return nil
      end
      np = np + 2
      strs[np - 1], strs[np] = name, value
    end
  end
  if target then
    flags, np = flags + 4, np + 1
    strs[np] = target
  end
  out[no + 1], out[no + 2] = flags, nt
  return np, no + 2
end

local function flat_list(list, np, out, no)
  if d_getmetatable(list) ~= nil then
    return nil
  end
  local count = no + 1
  no = count
  local n = 0
  for i, item in next, list do -- (see in_order)
    n = n + 1
    if i ~= n then
      return nil
    end
    np, no = flat_item(item, np, out, no)
    if np == nil then
      return nil
    end
  end
  out[count] = n
  return np, no
end

local function flat_assignments(list, np, out, no)
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
    local nprocs = plain_list(procs)
    if nprocs == nil or next(a, next(a, next(a))) ~= nil then
      return nil
    end
    np = np + 1
    strs[np] = a.Message
    no = no + 1
    out[no] = nprocs
    for j = 1, nprocs do
      if type(procs[j]) ~= "string" then
        return nil
      end
      np = np + 1
      strs[np] = procs[j]
    end
  end
  return np, no
end

-- Appends r's flat form at out[no + 1 ...]; returns the new end, or nil (then
-- out past `no` is garbage to overwrite).
local function flat_any(r, out, no)
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
  local first = nstrs + 1
  strs[first], strs[first + 1] = o.data, o.prompt
  local head = no -- "S", joined, count, first, shape length: filled in below
  local np, fno = flat_list(r.Messages, first + 1, out, no + 5)
  if np then
    np, fno = flat_list(r.Spawns, np, out, fno)
  end
  if np then
    np, fno = flat_assignments(r.Assignments, np, out, fno)
  end
  if np == nil then
    return nil -- (strs past nstrs: garbage to overwrite, emptied by the next reset)
  end
  nstrs = np
  out[head + 1], out[head + 2], out[head + 3], out[head + 4] = "S", tconcat(strs, "\0", first, np), np - first + 1,
    first
  out[head + 5] = fno - head - 5 -- how many integers the shape has
  return fno
end

-- flat_any under pcall (see flat_item): nil when it raised.
local function flat_result(r, out, no)
  local ok, fno = pcall(flat_any, r, out, no)
  if ok then
    return fno
  end
  return nil
end

return { flat_result = flat_result, MAX_FLAT = MAX_FLAT, reset = reset, kept_parts = kept_parts }
