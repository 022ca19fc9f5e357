-- Host side of the native Lua VM, part 3: results as flat values.
--
-- Contract: loaded by _host.lua with the real base functions as its env;
-- returns flat_result(r, out, no), MAX_FLAT, reset() (at the start of every
-- batch), kept_parts(key) and set_tag_names(names, values) (below). flat_result appends r's flat
-- form at out[no + 1 ...] and returns the new end, or nil when r has a shape
-- the flat form does not carry (the caller then sends r as JSON).

local type, next, pcall = type, next, pcall -- (upvalues: no lookup in the env per use)

-- A result as flat values, appended to `out` (see host.handle_batch). Its
-- strings travel together: "S", then every string of the result joined with
-- "\127" (DEL: one value to cross and one to decode, instead of one per string;
-- DEL is a character JSON leaves as it is, so the VM can escape the joined text
-- at once and split it after: see "results as JSON text" in lua.py), the
-- number of strings, the key to ask kept_parts for them one by one (below),
-- the number of integers that follow, then the shape as integers: Messages and Spawns (count, then per item its
-- flags (1 Anchor, 2 Data, 4 Target present), tag count (-1: no Tags) and
-- each tag's code (see set_tag_names)),
-- then Assignments (count, then per item its process count). The strings, in
-- order: Output data, prompt, then per item Anchor, Data, tag names and
-- values (those not coded), Target (those present), then per assignment
-- Message and processes.
-- Or "E", the error text.
-- A result of any other shape (a process that rewrote its outbox) goes as
-- "J", its JSON text, exactly as before the flat form existed.
local MAX_FLAT = 100000 -- values per result, and per batch, returned flat (Lua's stack holds 1,000,000)
local tconcat, tunpack = table.concat, table.unpack

-- The strings of this batch's results, one after the other in `strs` (a
-- result's are strs[first .. last]), kept until the next batch: should one of
-- them hold "\127", the joined string splits into more pieces than it has
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

-- Tag names and values met most (the library's own, the token's): such a
-- name or value crosses in the shape, as its place in the VM's lists (set
-- once by set_tag_names(names, values)), not as a string: a tag's code is
-- name code + 256 * value code (0: not coded, the string is among the others).
local name_code, value_code = {}, {}

local function set_tag_names(names, values)
  for i = 1, #names do
    name_code[names[i]] = i
  end
  for i = 1, #values do
    value_code[values[i]] = i * 256 -- (the value's part of a tag's code)
  end
end

-- How the shape is checked, cheaply (it runs for every result). Every table
-- is read raw: through `next` (its keys and values as stored), never by
-- indexing a key that may be absent, so no metamethod (process code) runs and
-- a metatable changes nothing: the JSON encoder, too, writes a table's raw
-- contents. A value that is not a table where one is walked makes `next`
-- raise, which (under flat_result's pcall) means "not flat". Strings are not
-- type-checked one by one: they all go into `strs`, and table.concat raises
-- on anything there that is not a string or a number (nil included), then
-- `#` on each raises on a number (a string's length is no metamethod).
--
-- A list is walked with next and taken only when its keys come as 1, 2, 3, ...
-- and nothing else: then it is exactly the sequence 1..n, which JSON writes
-- as an array (a sequence whose keys sit in the table's hash part may come in
-- another order: it then goes as JSON, which gives the same result, only
-- slower).

-- One message or spawn: its strings into strs after np, its flags and tag
-- count into out after no. Returns the new np, no, or nil.
local function flat_item(m, np, out, no)
  local anchor, data, target, tags
  for k, v in next, m do -- (raises if m is not a table)
    if k == "Tags" then
      tags = v
    elseif k == "Data" then
      data = v
    elseif k == "Target" then
      target = v
    elseif k == "Anchor" then
      anchor = v
    else
      return nil
    end
  end
  -- (tested for truth first, the common case: a value of false is not flat either)
  local flags, nt = 0, -1
  if anchor then -- (a value that is not a string: caught with the others, see above)
    flags, np = 1, np + 1
    strs[np] = anchor
  elseif anchor == false then
    return nil
  end
  if data then
    flags, np = flags + 2, np + 1
    strs[np] = data
  elseif data == false then
    return nil
  end
  local codes = no + 2 -- the tags' name codes follow flags and tag count
  if tags then
    nt = 0
    for i, t in next, tags do -- keys exactly 1, 2, ... in order; each tag exactly {name, value}
      nt = nt + 1
      if i ~= nt then
        return nil
      end
      local k1, name = next(t)
      local k2, value = next(t, k1)
      if next(t, k2) ~= nil then -- (also when t has fewer keys: next(t, nil) starts again)
        return nil
      end
      if k1 ~= "name" then
        if k1 ~= "value" or k2 ~= "name" then
          return nil
        end
        name, value = value, name
      elseif k2 ~= "value" then
        return nil
      end
      local nc, vc = name_code[name], value_code[value] -- (found: a string, as the tables' keys are)
      codes = codes + 1
      if nc then
        if vc then
          out[codes] = nc + vc
        else
          out[codes] = nc
          np = np + 1
          strs[np] = value
        end
      else
        strs[np + 1] = name
        if vc then
          out[codes], np = vc, np + 1
        else
          out[codes], np = 0, np + 2
          strs[np] = value
        end
      end
    end
  elseif tags == false or (flags == 0 and target == nil) then
    return nil -- ({}: JSON writes an empty array, not an object)
  end
  if target then
    flags, np = flags + 4, np + 1
    strs[np] = target
  elseif target == false then
    return nil
  end
  out[no + 1], out[no + 2] = flags, nt
  return np, codes
end

local function flat_list(list, np, out, no)
  local count = no + 1
  no = count
  local n = 0
  for i, item in next, list do -- (see above)
    n = n + 1
    if i ~= n then
      return nil
    end
    np, no = flat_item(item, np, out, no)
    if not np then
      return nil
    end
  end
  out[count] = n
  return np, no
end

local function flat_assignments(list, np, out, no)
  local count = no + 1
  no = count
  local n = 0
  for i, a in next, list do -- (see above); each {Message, Processes}
    n = n + 1
    if i ~= n then
      return nil
    end
    local k1, v1 = next(a)
    local k2, v2 = next(a, k1)
    if next(a, k2) ~= nil then
      return nil
    end
    local message, procs
    if k1 == "Message" and k2 == "Processes" then
      message, procs = v1, v2
    elseif k1 == "Processes" and k2 == "Message" then
      message, procs = v2, v1
    else
      return nil
    end
    np = np + 1
    strs[np] = message
    local nprocs = 0
    for j, p in next, procs do
      nprocs = nprocs + 1
      if j ~= nprocs then
        return nil
      end
      np = np + 1
      strs[np] = p
    end
    no = no + 1
    out[no] = nprocs
  end
  out[count] = n
  return np, no
end

local flat_body -- (below)

-- Appends r's flat form at out[no + 1 ...]; returns the new end, or nil (then
-- out past `no` is garbage to overwrite).
local function flat_any(r, out, no)
  local output, messages, spawns, assignments, err
  for k, v in next, r do -- a key JSON would write that the flat form does not carry: not flat
    if k == "Output" then
      output = v
    elseif k == "Messages" then
      messages = v
    elseif k == "Spawns" then
      spawns = v
    elseif k == "Assignments" then
      assignments = v
    elseif k == "Error" then
      err = v
    else
      return nil
    end
  end
  if err ~= nil then
    if type(err) ~= "string" then
      return nil
    end
    out[no + 1], out[no + 2] = "E", err
    return no + 2
  end
  local data, prompt, print_ = nil, nil, nil
  for k, v in next, output do -- exactly {data, prompt, print = true}
    if k == "data" then
      data = v
    elseif k == "prompt" then
      prompt = v
    elseif k == "print" then
      print_ = v
    else
      return nil
    end
  end
  if print_ ~= true or data == nil or prompt == nil then
    return nil
  end
  return flat_body(data, prompt, messages, spawns, assignments, out, no)
end

-- The flat form of a result {Output = {data, prompt, print = true}, Messages,
-- Spawns, Assignments} given its parts (data and prompt not nil); see flat_any.
function flat_body(data, prompt, messages, spawns, assignments, out, no)
  local first = nstrs + 1
  strs[first], strs[first + 1] = data, prompt
  local head = no -- "S", joined, count, first, shape length: filled in below
  local np, fno = flat_list(messages, first + 1, out, no + 5)
  if np then
    np, fno = flat_list(spawns, np, out, fno)
  end
  if np then
    np, fno = flat_assignments(assignments, np, out, fno)
  end
  if np == nil then
    return nil -- (strs past nstrs: garbage to overwrite, emptied by the next reset)
  end
  local joined = tconcat(strs, "\127", first, np) -- raises unless all are strings or numbers
  for i = first, np do
    local _ = #strs[i] -- raises on a number (see above)
  end
  nstrs = np
  out[head + 1], out[head + 2], out[head + 3], out[head + 4] = "S", joined, np - first + 1, first
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

-- The same for a result given as its parts (the library's handle_parts, see
-- process.lua): data (a string) and prompt, Messages, Spawns, Assignments.
local function flat_parts(data, prompt, messages, spawns, assignments, out, no)
  if prompt == nil then
    return nil -- (JSON writes no prompt)
  end
  local ok, fno = pcall(flat_body, data, prompt, messages, spawns, assignments, out, no)
  if ok then
    return fno
  end
  return nil
end

return {
  flat_result = flat_result, flat_parts = flat_parts, MAX_FLAT = MAX_FLAT, reset = reset, kept_parts = kept_parts, set_tag_names = set_tag_names,
}
