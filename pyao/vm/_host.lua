-- Host side of the native Lua VM (pyao.vm.lua).
--
-- Runs in the runtime's real globals, before anything else, and captures what
-- it needs as locals. It then empties the real globals, so nothing can reach
-- os, io, debug, package or lupa's `python` table through them. The process
-- only ever sees the sandbox table E built here.
--
-- Parts: _host_guards.lua (C loops under the meter), _host_flat.lua (results
-- as flat values) and _host_state.lua (serialisation) are loaded from here;
-- this file keeps ordering, metering, the sandbox and message runs.
--
-- Contract:
--   host.boot(sources, module_source, budget, env_json, devices)
--                                      build E, run our library, ao.init(env), then the module;
--                                      devices: "name@version" -> host function (see "devices" below)
--   host.handle_batch(budget, env_json, allowance, per_message, count, msg...)
--                                      run messages; per message: ok, gas, flat result | error
--   host.serialize() -> bytes | nil, reason     canonical bytes of the state
--   host.deserialize(bytes)                      state back, in place
--   host.attach_drive(bridge)                    WeaveDrive behind io.open (pyao.vm._lua_io), before boot
-- Determinism: `pairs`/`next` iterate in a canonical key order, `tostring` of
-- objects shows a stable id, `math.random` is our own seeded generator,
-- `os.time` returns the message's Timestamp.

local GUARDS_SOURCE, FLAT_SOURCE, STATE_SOURCE = ... -- the parts (below), each run with its own env
local real_load, next, type, select, error, pcall = load, next, type, select, error, pcall
local rawget, rawset, rawequal, rawlen, setmetatable = rawget, rawset, rawequal, rawlen, setmetatable
local getmetatable, tostring, tonumber, ipairs, assert = getmetatable, tostring, tonumber, ipairs, assert
local xpcall = xpcall
local string, table, math, coroutine, utf8 = string, table, math, coroutine, utf8
local d_sethook, d_getinfo = debug.sethook, debug.getinfo
local d_getupvalue, d_setupvalue = debug.getupvalue, debug.setupvalue
local d_upvalueid, d_upvaluejoin = debug.upvalueid, debug.upvaluejoin
local d_getmetatable, d_setmetatable = debug.getmetatable, debug.setmetatable
local sdump, sformat, spack, sunpack, sbyte, ssub = string.dump, string.format, string.pack, string.unpack, string.byte,
  string.sub
local tsort, tconcat, tunpack = table.sort, table.concat, table.unpack
local mtype, mfloor = math.type, math.floor

-- Empty the real globals: from here on the host works from its locals only.
local G = _G
for k in next, G do
  G[k] = nil
end

local host = {}
local STEP = 1000 -- instructions between two calls of the count hook

-- -------------------------------------------------------------- state tables
local E -- the sandbox environment (the process's _G)
local S = { now = nil, rng = 0, seeded = false, dev = {} } -- hidden process state (dev: device states)
local ids = setmetatable({}, { __mode = "k" }) -- object -> stable id (ordering, tostring)
local nextid = 0
local lib_handle -- the library's handle_parts (process.lua): a result's parts, or {Error = text}

local function idof(o)
  local i = ids[o]
  if not i then
    nextid = nextid + 1
    i = nextid
    ids[o] = i
  end
  return i
end

-- --------------------------------------------------- canonical key ordering
-- numbers < strings < false < true < objects (by stable id)
local function rank(k)
  local t = type(k)
  if t == "number" then
    return 1
  elseif t == "string" then
    return 2
  elseif t == "boolean" then
    return k and 4 or 3
  end
  return 5
end

local function keyless(a, b)
  local ra, rb = rank(a), rank(b)
  if ra ~= rb then
    return ra < rb
  end
  if ra <= 2 then
    return a < b
  end
  if ra == 5 then
    return idof(a) < idof(b)
  end
  return false
end

-- Objects get their stable id the first time they are ordered or printed. New
-- objects met together are numbered by a fingerprint of their contents (and,
-- for table keys, of the value they key), never by address. Only objects alike
-- in all of that are left in address order: a known, documented gap
-- (docs/lua-modules.md, "Determinism"). No sort here takes a Lua comparator, so
-- the instructions spent (and so the gas) do not depend on the table's raw order.
local function scalar(v)
  local tv = type(v)
  if tv == "string" then
    return sformat("%q", v)
  elseif tv == "number" then
    return mtype(v) .. sformat(mtype(v) == "integer" and "%d" or "%a", v)
  elseif tv == "boolean" then
    return tostring(v)
  end
  return tv
end

local function fingerprint(o)
  local ty = type(o)
  if ty == "function" then
    local info = d_getinfo(o, "S")
    local parts, i = { "f", info.source, ":", info.linedefined }, 1
    while true do -- the upvalues' scalar values tell closures of one definition apart
      local name, v = d_getupvalue(o, i)
      if name == nil then
        break
      end
      parts[#parts + 1] = "," .. scalar(v)
      i = i + 1
    end
    return tconcat(parts)
  elseif ty == "thread" then
    local info = d_getinfo(o, 1, "Sl")
    return "c" .. coroutine.status(o) .. (info and (info.source .. ":" .. info.currentline) or "")
  elseif ty ~= "table" then
    return ty
  end
  local parts, n = {}, 0
  for k, v in next, o do
    local tk = type(k)
    if tk == "string" or tk == "number" or tk == "boolean" then
      n = n + 1
      parts[n] = scalar(k) .. "=" .. scalar(v)
    else
      n = n + 1
      parts[n] = "~" .. tk .. "=" .. scalar(v)
    end
  end
  tsort(parts)
  return "t" .. (d_getmetatable(o) and "m" or "") .. tconcat(parts, ",")
end

-- Order the object keys of t: known ids first (by id), then new objects by
-- fingerprint of key and value. With `assign`, the new ones get their ids
-- (pairs, next); the serializer does not assign, so taking a snapshot never
-- changes the state.
local function order_objects(objs, n, assign, t)
  local known_ids, by_id, fresh_groups, fresh_keys = {}, {}, {}, {}
  local nk, ng = 0, 0
  for i = 1, n do
    local o = objs[i]
    local id = ids[o]
    if id then
      nk = nk + 1
      known_ids[nk] = id
      by_id[id] = o
    else
      local v = t and rawget(t, o)
      local tv = type(v)
      local vfp = (tv == "table" or tv == "function" or tv == "thread" or tv == "userdata") and fingerprint(v) or scalar(v)
      local fp = fingerprint(o) .. "\0" .. vfp
      local group = fresh_groups[fp]
      if group == nil then
        group = {}
        fresh_groups[fp] = group
        ng = ng + 1
        fresh_keys[ng] = fp
      end
      group[#group + 1] = o
    end
  end
  tsort(known_ids)
  local out = {}
  for i = 1, nk do
    out[i] = by_id[known_ids[i]]
  end
  tsort(fresh_keys)
  local m = nk
  for i = 1, ng do
    local group = fresh_groups[fresh_keys[i]]
    for j = 1, #group do
      m = m + 1
      out[m] = group[j]
      if assign then
        idof(group[j])
      end
    end
  end
  return out
end

local function sorted_keys(t, assign)
  local nums, strs, objs, n1, n2, n3 = {}, {}, {}, 0, 0, 0
  local hasf, hast = false, false
  local k = next(t)
  while k ~= nil do
    local ty = type(k)
    if ty == "number" then
      n1 = n1 + 1
      nums[n1] = k
    elseif ty == "string" then
      n2 = n2 + 1
      strs[n2] = k
    elseif k == false then
      hasf = true
    elseif k == true then
      hast = true
    else
      n3 = n3 + 1
      objs[n3] = k
    end
    k = next(t, k)
  end
  tsort(nums)
  tsort(strs)
  if n3 > 0 then
    objs = order_objects(objs, n3, assign ~= false, t)
  end
  local n = n1
  for i = 1, n2 do
    n = n + 1
    nums[n] = strs[i]
  end
  if hasf then
    n = n + 1
    nums[n] = false
  end
  if hast then
    n = n + 1
    nums[n] = true
  end
  for i = 1, n3 do
    n = n + 1
    nums[n] = objs[i]
  end
  return nums, n
end

local function metafield(o, name)
  local mt = d_getmetatable(o)
  return mt and rawget(mt, name)
end

local function det_pairs(t)
  local mp = metafield(t, "__pairs")
  if mp then
    local f, s, c = mp(t)
    return f, s, c
  end
  if type(t) ~= "table" then
    error("bad argument #1 to 'pairs' (table expected, got " .. type(t) .. ")", 2)
  end
  local keys, n, i = sorted_keys(t)
  i = 0
  return function()
    while i < n do
      i = i + 1
      local k = keys[i]
      local v = rawget(t, k)
      if v ~= nil then
        return k, v
      end
    end
    return nil
  end, t, nil
end

-- table -> its sorted keys while a next() walk is under way; emptied before
-- every message, so its contents (and the work next() does) depend only on
-- the message's own calls, never on when the collector ran
local next_cache = {}
local next_cache_used = false -- (set when det_next stores a walk: run empties the cache only then)

local function det_next(t, k)
  if type(t) ~= "table" then
    error("bad argument #1 to 'next' (table expected, got " .. type(t) .. ")", 2)
  end
  local c = next_cache[t]
  local i
  if k == nil then
    local first = next(t)
    if first == nil then
      next_cache[t] = nil
      return nil
    end
    c = { n = 0 }
    c.keys, c.n = sorted_keys(t)
    next_cache[t] = c
    next_cache_used = true
    i = 0
  else
    if not (c and c.keys[c.last] == k) then
      c = { n = 0 }
      c.keys, c.n = sorted_keys(t)
      next_cache[t] = c
      next_cache_used = true
      i = nil
      for j = 1, c.n do
        if rawequal(c.keys[j], k) then
          i = j
          break
        end
      end
      if i == nil then
        error("invalid key to 'next'", 2)
      end
    else
      i = c.last
    end
  end
  while i < c.n do
    i = i + 1
    local key = c.keys[i]
    local v = rawget(t, key)
    if v ~= nil then
      c.last = i
      return key, v
    end
  end
  next_cache[t] = nil
  return nil
end

local function det_tostring(v)
  local ty = type(v)
  if ty == "table" or ty == "function" or ty == "thread" or ty == "userdata" then
    if metafield(v, "__tostring") then
      return tostring(v)
    end
    return sformat("%s: 0x%08x", ty, idof(v))
  end
  return tostring(v)
end

local function det_format(fmt, ...)
  local n = select("#", ...)
  local args = { ... }
  for i = 1, n do
    local ty = type(args[i])
    if ty == "table" or ty == "function" or ty == "thread" or ty == "userdata" then
      args[i] = det_tostring(args[i])
    end
  end
  return sformat(fmt, tunpack(args, 1, n))
end

-- ------------------------------------------------------------ random numbers
-- splitmix64 over Lua 5.3's wrapping 64-bit integers; the state lives in S.
local function fnv1a(s)
  local h = -3750763034362895579 -- 0xcbf29ce484222325
  for i = 1, #s do
    h = (h ~ sbyte(s, i)) * 1099511628211
  end
  return h
end

local function rng_next()
  local z = S.rng + -7046029254386353131 -- 0x9E3779B97F4A7C15
  S.rng = z
  z = (z ~ (z >> 30)) * -4658895280553007687 -- 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * -7723592293110705685 -- 0x94D049BB133111EB
  return z ~ (z >> 31)
end

local function det_random(m, n)
  local nargs = (m ~= nil and 1 or 0) + (n ~= nil and 1 or 0)
  if nargs == 0 then
    return (rng_next() >> 11) * (1.0 / 9007199254740992.0)
  end
  local lo, hi
  if n == nil then
    lo, hi = 1, math.tointeger(m)
  else
    lo, hi = math.tointeger(m), math.tointeger(n)
  end
  if lo == nil or hi == nil then
    error("bad argument to 'random' (number has no integer representation)", 2)
  end
  if lo > hi then
    error("bad argument to 'random' (interval is empty)", 2)
  end
  local span = hi - lo + 1
  if span <= 0 then -- the whole integer range
    return lo + rng_next()
  end
  return lo + math.fmod(rng_next() >> 1, span)
end

local function det_randomseed(x)
  S.rng = fnv1a(tostring(x))
  S.seeded = true
end


-- ----------------------------------------------------------------- metering
-- `used` is written only by the hook and `charged` only outside it (pattern
-- work, below): the hook can fire between any two instructions, so an update
-- of a variable the hook also writes could lose the hook's increment.
local used, charged, limit, exceeded = 0, 0, 0, false

local function hook()
  used = used + STEP
  if used + charged > limit then
    exceeded = true
    error("compute limit exceeded", 0)
  end
end

-- Coroutines do not inherit the hook: every coroutine the process makes gets it.
-- Its count first fires after STEP instructions, so a coroutine that ends sooner
-- would run uncounted: making one is charged the STEP it may hide (otherwise a
-- coroutine per 999 instructions stretched Compute-Limit about a hundredfold).
local metering = false
local function metered_create(f)
  local co = coroutine.create(f)
  if metering then
    if used + charged + STEP > limit then
      exceeded = true
      error("compute limit exceeded", 0)
    end
    charged = charged + STEP
    d_sethook(co, hook, "", STEP)
  end
  return co
end

-- One coroutine serves message after message for the library's handlers
-- (library_private.run_handlers, used by process.handle), instead of a new one
-- per message (a thread, its stack and call frames: about a tenth of what a
-- Transfer allocates). Each message runs f(msg, env) in `handing`, taken from
-- the pool before metering starts (run, below); a coroutine goes back to the
-- pool only when f returned normally and nothing ever saw it: the sandbox's
-- coroutine.running marks what it returns as seen, and a seen coroutine ends
-- when f returns, as a one-off coroutine does (so a handler parked by Receive,
-- or one that kept coroutine.running(), sees exactly what it saw before). The
-- pool lives in host locals only: the serializer never meets it.
-- Gas: the coroutine's count is reset before it resumes and again right before
-- f, so a fresh coroutine and a reused one count the same instructions.
local co_create, co_resume, co_yield, co_running = coroutine.create, coroutine.resume, coroutine.yield,
  coroutine.running
local POOL_DONE = {} -- what a pooled coroutine yields once f returned
local seen = setmetatable({}, { __mode = "k" }) -- coroutines coroutine.running() has returned
local seen_count = 0 -- how many times coroutine.running() marked one (pool_body looks at seen only if it moved)
local pooled, handing -- the idle coroutine; the one taken for the current message

local function pool_body(f, msg, env)
  while true do
    if metering then
      d_sethook(hook, "", STEP)
    else
      d_sethook()
    end
    local mark = seen_count
    f(msg, env)
    if seen_count ~= mark and seen[co_running()] then
      return
    end
    f, msg, env = co_yield(POOL_DONE)
  end
end

local function sandbox_running()
  local co, main = co_running()
  if not main then
    seen[co] = true
    seen_count = seen_count + 1
  end
  return co, main
end

-- As coroutine.resume(coroutine.create(f), msg, env), in the message's pooled coroutine.
local function run_handlers(f, msg, env)
  local co = handing
  handing = nil
  if co == nil then -- (not inside a message run: a nested call)
    co = co_create(pool_body)
  end
  if metering then
    d_sethook(co, hook, "", STEP)
  end
  local ok, res = co_resume(co, f, msg, env)
  if ok and res == POOL_DONE then
    pooled = co
  end
  return ok, res
end

-- Run f under the instruction budget; returns ok, then f's first five values
-- or the error.
local function metered(budget, f, ...)
  used, charged, limit, exceeded = 0, 0, budget, false
  d_sethook(hook, "", STEP)
  metering = true
  local ok, res, r2, r3, r4, r5 = pcall(f, ...)
  metering = false
  d_sethook()
  if exceeded then
    return false, "compute limit exceeded: more than " .. budget .. " instructions"
  end
  return ok, res, r2, r3, r4, r5
end

-- ----------------------------------------------------------- io (WeaveDrive)
-- io.open serves only WeaveDrive paths, read-only, through the host bridge
-- (pyao.vm._lua_io): bridge(op, path, height, offset, length); any other path,
-- a write mode or a refused file is a Lua error. Without a bridge there is no io. A file is a plain
-- table {_path, _size, _pos, _closed} whose metatable lives in S, so open files
-- survive snapshots; every read asks the host for bytes at _pos.
local drive_call -- the bridge (set before boot), or nil when the CU offers no WeaveDrive
local msg_block_height -- the Block-Height field of the message being handled (nil while booting)

-- Block-Height of the message being handled as an integer (WeaveDrive's attestation
-- horizon), or nil; worked out when a device or the drive asks, not for every message.
local function msg_height()
  local h = msg_block_height
  if h == nil then
    return nil
  end
  return math.tointeger(tonumber(h))
end
local READ_PIECE = 1048576
local LINE_PIECE = 65536
local FILE = {}
local FILE_MT = { __index = FILE, __name = "FILE*", __metatable = "file" }
S.file_mt = FILE_MT

-- Bytes read count against the compute budget (one instruction per 64 bytes), so a
-- loop of large reads cannot spend host time the budget does not see.
local function drive(op, path, offset, length)
  local ok, value = drive_call(op, path, msg_height(), offset, length)
  if not ok then
    error(value, 0)
  end
  if metering then -- `charged`, not `used`: only the hook writes `used` (see metering)
    charged = charged + (#value >> 6)
    if used + charged > limit then
      exceeded = true
      error("compute limit exceeded", 0)
    end
  end
  return value
end

local function checkfile(f, level)
  if type(f) ~= "table" or d_getmetatable(f) ~= FILE_MT then
    error("bad argument #1 (file expected, got " .. type(f) .. ")", level + 1)
  end
  if f._closed then
    error("attempt to use a closed file", level + 1)
  end
  local pos = f._pos
  if mtype(pos) ~= "integer" or pos < 0 then
    error("file position is not a non-negative integer (was _pos changed?)", level + 1)
  end
end

-- up to n bytes from the position, in host pieces of at most READ_PIECE
local function pull(f, n)
  local parts, got = {}, 0
  while got < n do
    local want = n - got
    if want > READ_PIECE then
      want = READ_PIECE
    end
    local data = drive("read", f._path, f._pos, want)
    if #data == 0 then
      break
    end
    parts[#parts + 1] = data
    got = got + #data
    f._pos = f._pos + #data
  end
  return tconcat(parts)
end

local function read_line(f, keep)
  local parts = {}
  while true do
    local data = drive("read", f._path, f._pos, LINE_PIECE)
    if #data == 0 then
      if #parts == 0 then
        return nil
      end
      return tconcat(parts)
    end
    local nl = string.find(data, "\n", 1, true)
    if nl then
      f._pos = f._pos + nl
      parts[#parts + 1] = ssub(data, 1, keep and nl or nl - 1)
      return tconcat(parts)
    end
    f._pos = f._pos + #data
    parts[#parts + 1] = data
  end
end

local function read_one(f, fmt)
  if type(fmt) == "number" then
    local n = math.tointeger(fmt)
    if n == nil then
      error("bad argument to 'read' (number has no integer representation)", 3)
    end
    if n <= 0 then
      return (f._pos < f._size) and "" or nil
    end
    local data = pull(f, n)
    return #data > 0 and data or nil
  end
  if type(fmt) ~= "string" then
    error("bad argument to 'read' (invalid format)", 3)
  end
  local c = ssub(fmt, 1, 1) == "*" and ssub(fmt, 2, 2) or ssub(fmt, 1, 1)
  if c == "a" then
    return pull(f, f._size > f._pos and f._size - f._pos or 0)
  elseif c == "l" or c == "L" then
    return read_line(f, c == "L")
  end
  error("bad argument to 'read' (invalid format '" .. fmt .. "'; WeaveDrive files read n, 'a', 'l', 'L')", 3)
end

function FILE.read(f, ...)
  checkfile(f, 2)
  local n = select("#", ...)
  if n == 0 then
    return read_line(f, false)
  end
  local out = {}
  for i = 1, n do
    local v = read_one(f, (select(i, ...)))
    out[i] = v
    if v == nil then
      return tunpack(out, 1, i)
    end
  end
  return tunpack(out, 1, n)
end

function FILE.seek(f, whence, offset)
  checkfile(f, 2)
  whence = whence or "cur"
  offset = offset or 0
  if mtype(offset) ~= "integer" then
    offset = math.tointeger(offset)
    if offset == nil then
      error("bad argument #2 to 'seek' (number has no integer representation)", 2)
    end
  end
  local base
  if whence == "set" then
    base = 0
  elseif whence == "cur" then
    base = f._pos
  elseif whence == "end" then
    base = f._size
  else
    error("bad argument #1 to 'seek' (invalid option '" .. tostring(whence) .. "')", 2)
  end
  local pos = base + offset
  if pos < 0 then
    return nil, "Invalid argument", 22
  end
  f._pos = pos
  return pos
end

function FILE.lines(f, ...)
  checkfile(f, 2)
  local fmts = table.pack(...)
  return function()
    if fmts.n == 0 then
      return FILE.read(f)
    end
    return FILE.read(f, tunpack(fmts, 1, fmts.n))
  end
end

function FILE.close(f)
  checkfile(f, 2)
  f._closed = true
  return true
end

function FILE.write()
  error("WeaveDrive files are read-only", 2)
end

FILE_MT.__tostring = function(f)
  return f._closed and "file (closed)" or ("file (" .. tostring(f._path) .. ")")
end

local function io_open(path, mode)
  if type(path) ~= "string" then
    error("bad argument #1 to 'open' (string expected, got " .. type(path) .. ")", 2)
  end
  if mode ~= nil and mode ~= "r" and mode ~= "rb" then
    error("io.open: " .. path .. ": WeaveDrive files are read-only (mode 'r')", 2)
  end
  local ok, value = drive_call("open", path, msg_height(), 0, 0)
  if not ok then
    error(value, 0)
  end
  return setmetatable({ _path = path, _size = value, _pos = 0, _closed = false }, FILE_MT)
end

-- io.lines(path, ...): the lines (or formats) of a WeaveDrive file; closed at its end
local function io_lines(path, ...)
  if path == nil then
    error("bad argument #1 to 'lines' (io.lines needs a WeaveDrive path: there is no default input)", 2)
  end
  local f = io_open(path)
  local fmts = table.pack(...)
  return function()
    if f._closed then
      return nil
    end
    local r
    if fmts.n == 0 then
      r = table.pack(FILE.read(f))
    else
      r = table.pack(FILE.read(f, tunpack(fmts, 1, fmts.n)))
    end
    if r[1] == nil then
      f._closed = true
    end
    return tunpack(r, 1, r.n)
  end
end

local function io_type(f)
  if type(f) == "table" and d_getmetatable(f) == FILE_MT then
    return f._closed and "closed file" or "file"
  end
  return nil
end

function host.attach_drive(bridge)
  drive_call = bridge
end

-- ------------------------------------------------------------------ devices
-- The one door from a process to the compute unit's devices (pyao.abc.ProcessDevice):
-- require("devices").call(name, op, ...). The host function gets the device's
-- state (kept here in S.dev, so it is snapshotted and rolled back with the
-- process), the instructions left and the message's Id, Hash-Chain, Read-Only and Block-Height,
-- and answers cost, new state, error, values...
local device_fns = {}
local msg_id, msg_chain, msg_read_only -- of the message being handled (set per message, below)

local function device_call(name, op, ...)
  local f = device_fns[name]
  if f == nil then
    error("device " .. tostring(name) .. " is not available on this compute unit", 2)
  end
  local r = table.pack(f(S.dev[name], limit - used - charged, msg_id, msg_chain, msg_read_only, msg_height(), op, ...))
  charged = charged + r[1] -- not `used`: only the hook writes `used` (see metering)
  if used + charged > limit then
    exceeded = true
    error("compute limit exceeded", 0)
  end
  if r[3] ~= nil then
    error(r[3], 2)
  end
  S.dev[name] = r[2]
  return tunpack(r, 4, r.n)
end

-- ------------------------------------------------------------------ sandbox
local function copy(t, drop)
  local c = {}
  for k, v in next, t do
    if not (drop and drop[k]) then
      c[k] = v
    end
  end
  return c
end

local function safe_setmetatable(t, mt)
  if type(mt) == "table" and (rawget(mt, "__gc") ~= nil or rawget(mt, "__mode") ~= nil) then
    error("__gc and __mode are not available: collection time is not deterministic", 2)
  end
  return setmetatable(t, mt)
end

local bundled = {}
-- Handed to the bundled modules only (as their chunk's second argument), never
-- to process code: `next` in the table's raw order, which differs between two
-- runtimes. The library uses it only where the outcome does not depend on the
-- order (counting, copying into another table, collecting keys it then sorts).
-- Also the raw pattern functions, for the library's own fixed patterns, which
-- all run in linear time (process code gets the guarded ones below), and the
-- raw table.move, which the library uses only on tables without a metatable
-- (so `#t` is bounded by the table's size).
-- Also fresh_msg_normal(msg): whether msg is the one the host has just built
-- from a shape (below) whose field names are all in the set process.lua
-- registered (set_normal_names: the names its normalise leaves as they are),
-- asked once per msg before anything else touched it; then normalise has no
-- key to rename and need not walk the msg. The verdict is taken once per shape,
-- outside the meter, so it costs every runtime the same instructions.
local normal_names -- (process.lua's set; it never changes)
local fresh_msg, fresh_normal -- the msg read_msg built last, and its shape's verdict

local function fresh_msg_normal(msg)
  if rawequal(msg, fresh_msg) then
    fresh_msg = nil
    return fresh_normal
  end
  return false
end

local library_private = {
  run_handlers = run_handlers,
  unordered_next = next, find = string.find, match = string.match, gmatch = string.gmatch, gsub = string.gsub,
  format = string.format, move = table.move, fresh_msg_normal = fresh_msg_normal,
  set_normal_names = function(set)
    normal_names = normal_names or set
  end,
}

-- ------------------------------------------------------- C loops under the meter
-- (_host_guards.lua) Pattern work is charged here: `used` is the hook's, so
-- charges go to `charged`.
local PATTERN_STEPS = 4 -- matcher steps per instruction of budget (a step is cheaper than an instruction)

local function charge(steps)
  if not metering then
    return
  end
  local units = steps / PATTERN_STEPS
  if used + charged + units > limit then
    exceeded = true
    error("compute limit exceeded: a pattern could take more than the budget left", 0)
  end
  charged = charged + mfloor(units)
end

local function part_env()
  return {
    string = string, table = table, math = math, type = type, tostring = tostring, pcall = pcall, error = error,
    select = select, rawget = rawget, rawlen = rawlen, next = next, ipairs = ipairs,
    debug_getmetatable = d_getmetatable,
  }
end

local guarded = assert(real_load(GUARDS_SOURCE, "=pyao-host-guards", "t", part_env()))(charge, function()
  return metering
end)
local flat = assert(real_load(FLAT_SOURCE, "=pyao-host-flat", "t", part_env()))()
local flat_result, flat_parts, MAX_FLAT = flat.flat_result, flat.flat_parts, flat.MAX_FLAT
host.kept_parts = flat.kept_parts -- (the strings of one result of the last batch, one by one)
host.set_tag_names = flat.set_tag_names -- (the VM's lists of coded tag names and values, once)

local function build_env()
  E = {}
  for _, k in ipairs({
    "assert", "error", "ipairs", "pcall", "rawequal", "rawget", "rawlen", "rawset", "select", "tonumber", "type",
    "xpcall", "getmetatable",
  }) do
    E[k] = ({
      assert = assert, error = error, ipairs = ipairs, pcall = pcall, rawequal = rawequal, rawget = rawget,
      rawlen = rawlen, rawset = rawset, select = select, tonumber = tonumber, type = type, xpcall = xpcall,
      getmetatable = getmetatable,
    })[k]
  end
  E._G = E
  E._VERSION = "Lua 5.3"
  E.setmetatable = safe_setmetatable
  E.next, E.pairs, E.tostring = det_next, det_pairs, det_tostring
  E.load = function(chunk, name, mode, ...)
    local env = E
    if select("#", ...) > 0 then
      env = ...
    end
    if type(chunk) == "function" then
      local parts = {}
      while true do
        local p = chunk()
        if p == nil or p == "" then
          break
        end
        if type(p) ~= "string" then
          return nil, "reader function must return a string"
        end
        parts[#parts + 1] = p
      end
      chunk = tconcat(parts)
    end
    if type(chunk) ~= "string" then
      error("bad argument #1 to 'load' (string expected, got " .. type(chunk) .. ")", 2)
    end
    return real_load(chunk, name or chunk, "t", env)
  end
  E.string = copy(string, { dump = true })
  E.string.find, E.string.match, E.string.gmatch, E.string.gsub = guarded.find, guarded.match, guarded.gmatch,
    guarded.gsub
  E.string.rep = guarded.rep
  E.string.format = det_format
  E.table = copy(table)
  E.table.insert, E.table.remove, E.table.move = guarded.insert, guarded.remove, guarded.move
  E.math = copy(math)
  E.math.random, E.math.randomseed = det_random, det_randomseed
  E.utf8 = copy(utf8)
  E.coroutine = copy(coroutine)
  E.coroutine.create = metered_create
  E.coroutine.running = sandbox_running
  E.coroutine.wrap = function(f)
    local co = metered_create(f)
    return function(...)
      local r = table.pack(coroutine.resume(co, ...))
      if not r[1] then
        error(r[2], 0)
      end
      return tunpack(r, 2, r.n)
    end
  end
  E.os = {
    time = function()
      return S.now
    end,
  }
  if drive_call then -- io exists only where WeaveDrive is offered
    E.io = { open = io_open, lines = io_lines, type = io_type }
  end
  E.package = { loaded = { devices = { call = device_call } } }
  E.require = function(name)
    if type(name) ~= "string" then
      error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
    end
    local loaded = E.package.loaded
    local key = name:gsub("^%.", "")
    if bundled[key] == nil and bundled["blueprints." .. key] ~= nil then
      key = "blueprints." .. key -- require(".token") as well as require("blueprints.token")
    end
    if loaded[name] ~= nil then
      return loaded[name]
    end
    if loaded[key] ~= nil then
      return loaded[key]
    end
    local src = bundled[key]
    if not src then
      error("module '" .. name .. "' not found (only the bundled modules can be required)", 2)
    end
    local f = assert(real_load(src, "@" .. key .. ".lua", "t", E))
    local r = f(key, library_private)
    if r == nil then
      r = true
    end
    loaded[key] = r
    return r
  end
  -- string methods use the sandbox's string table; the metatable stays hidden
  local smt = d_getmetatable("")
  smt.__index = E.string
  smt.__metatable = false
end

local host_json -- our json module, loaded privately for the host

function host.boot(sources, module_source, budget, env_json, devices)
  for k, v in next, sources do
    bundled[k] = v
  end
  for k, v in next, devices or {} do
    device_fns[k] = v
  end
  host_json = real_load(bundled.json, "=pyao-host-json", "t", {
    string = string, table = table, math = math, type = type, pairs = function(t)
      return next, t, nil
    end, next = next, error = error, tostring = tostring, select = select, rawlen = rawlen,
    tonumber = tonumber, ipairs = ipairs, setmetatable = setmetatable, pcall = pcall, utf8 = utf8,
  })()
  build_env()
  local ok, err = metered(budget, function()
    local process = E.require("process")
    lib_handle = library_private.handle_parts
    if env_json and #env_json > 0 then -- the module's top level already knows ao.id, authorities, module
      E.package.loaded.ao.init(host_json.decode(env_json))
    end
    if module_source and #module_source > 0 then
      local f = assert(real_load(module_source, "@module.lua", "t", E))
      f()
    end
  end)
  if not ok then
    return false, tostring(err)
  end
  return true, ""
end

-- Per message: the msg comes either as flat fields (built by the VM without
-- any JSON) or as JSON (anything else); env comes as JSON and is decoded once
-- per distinct text, then copied for every message, so a process that changes
-- its env sees a fresh one next time, as when it was decoded every time. The
-- decoding and encoding run outside the meter: gas counts the library's and
-- the process's work only.
local env_text, env_template

local function tree_copy(v)
  if type(v) ~= "table" then
    return v
  end
  local c, n = {}, rawlen(v)
  for i = 1, n do -- sequences first, in order, as the JSON decoder builds them
    c[i] = tree_copy(v[i])
  end
  for k, x in next, v do
    if not (mtype(k) == "integer" and k >= 1 and k <= n) then
      c[k] = tree_copy(x)
    end
  end
  return c
end

-- A faster copy: Lua source of one table constructor that builds the same tree
-- (sequences first, as tree_copy), compiled once per distinct env. nil when the
-- tree holds something a constant cannot write (a float that is not finite, a
-- sequence with holes, nesting too deep for the parser): then tree_copy does it.
local function constructor_source(v, parts, n, depth)
  local ty = type(v)
  if ty == "string" then
    n = n + 1
    parts[n] = sformat("%q", v)
  elseif ty == "boolean" then
    n = n + 1
    parts[n] = v and "true" or "false"
  elseif mtype(v) == "integer" then
    n = n + 1
    parts[n] = v == math.mininteger and "(-9223372036854775807-1)" or sformat("%d", v)
  elseif ty == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      return nil
    end
    n = n + 1
    parts[n] = sformat("%a", v)
  elseif ty == "table" and depth < 100 then
    local len = rawlen(v)
    n = n + 1
    parts[n] = "{"
    for i = 1, len do
      if rawget(v, i) == nil then
        return nil
      end
      n = constructor_source(rawget(v, i), parts, n, depth + 1)
      if n == nil then
        return nil
      end
      n = n + 1
      parts[n] = ","
    end
    for k, x in next, v do
      if not (mtype(k) == "integer" and k >= 1 and k <= len) then
        if mtype(k) == "integer" then
          return nil -- an integer key past the sequence: leave the layout to tree_copy
        end
        n = n + 1
        parts[n] = "["
        n = constructor_source(k, parts, n, depth + 1)
        if n == nil then
          return nil
        end
        n = n + 1
        parts[n] = "]="
        n = constructor_source(x, parts, n, depth + 1)
        if n == nil then
          return nil
        end
        n = n + 1
        parts[n] = ","
      end
    end
    n = n + 1
    parts[n] = "}"
  else
    return nil
  end
  return n
end

local env_build -- the compiled constructor of env_template, or nil (then tree_copy)

local function env_for(env_json)
  if env_json ~= env_text then
    env_template = host_json.decode(env_json)
    env_text = env_json
    local parts = { "return " }
    env_build = nil
    if constructor_source(env_template, parts, 1, 0) then
      env_build = real_load(tconcat(parts), "=pyao-host-env", "t", {})
    end
  end
  if env_build then
    return env_build()
  end
  return tree_copy(env_template)
end

local function step(msg, env)
  if not S.seeded then
    local mod = type(env.Module) == "table" and env.Module.Id or ""
    det_randomseed(tostring(msg["Block-Height"]) .. tostring(msg.Owner) .. tostring(mod) .. tostring(msg.Id))
  end
  S.now = msg.Timestamp
  msg_block_height = msg["Block-Height"] -- (see msg_height)
  msg_id, msg_chain, msg_read_only = msg.Id, msg["Hash-Chain"], msg["Read-Only"] -- what devices see
  return lib_handle(msg, env, host)
end

-- Runs one message; appends ok, gas, then the result (flat, "E" or "J") or,
-- when not ok, the error text. Returns the new end of out, whether the
-- message failed (not ok, or an Error result: its state must be dropped), and
-- its gas.
local function run(msg, env, budget, out, no)
  if next_cache_used then
    for k in next, next_cache do
      next_cache[k] = nil
    end
    next_cache_used = false
  end
  handing, pooled = pooled or co_create(pool_body), nil -- (before the meter: see run_handlers)
  local ok, res, prompt, messages, spawns, assignments = metered(budget, step, msg, env)
  fresh_msg = nil
  if handing ~= nil then -- not taken (the message never reached the handlers): still clean
    pooled, handing = handing, nil
  end
  local gas = used + charged
  out[no + 1], out[no + 2] = ok, gas
  no = no + 2
  if not ok then
    out[no + 1] = det_tostring(res)
    return no + 1, true, gas
  end
  local failed, fno = false, nil
  if type(res) == "string" then -- the parts of a result (see handle_parts in process.lua)
    fno = flat_parts(res, prompt, messages, spawns, assignments, out, no)
    if not (fno and fno - no <= MAX_FLAT) then -- the table process.handle makes of them
      res = { Output = { data = res, prompt = prompt, print = true }, Messages = messages, Spawns = spawns,
        Assignments = assignments }
    end
  else -- {Error = text}
    failed = type(res) == "table" and res.Error ~= nil
    fno = type(res) == "table" and flat_result(res, out, no)
  end
  if fno and fno - no <= MAX_FLAT then
    return fno, failed, gas
  end
  for i = no + 1, fno or no do -- too big to cross as values (Lua's stack): one JSON string instead
    out[i] = nil
  end
  out[no + 1], out[no + 2] = "J", host_json.encode(res)
  return no + 2, failed, gas
end

-- A shape (field names joined with "\0") as a function that builds the msg
-- table from the batch's arguments: one table constructor naming every field
-- (a[i + j] for the j-th; a nil one makes no key), compiled once per shape; the
-- first shapes seen are kept (the CU sends every message in the same shape).
-- The constructor sizes the table at once, with room for the fields the
-- library adds (TagArray, reply, forward, the tags copied onto the msg).
local shapes, shape_normal, nshapes = {}, {}, 0
local ROOM = 12 -- keys the library adds to a msg (TagArray, reply, forward, the tags copied onto it)

-- The builder of a shape, and whether every name of it is in normal_names
-- (see fresh_msg_normal).
local function shape_builder(shape)
  local build = shapes[shape]
  if build == nil then
    local fields, n, pos = {}, 0, 1
    local normal = normal_names ~= nil
    while true do
      local z = string.find(shape, "\0", pos, true)
      local name = ssub(shape, pos, (z or 0) - 1)
      n = n + 1
      fields[n] = sformat("[%q] = a[i + %d], ", name, n)
      normal = normal and rawget(normal_names, name) == true
      if not z then
        break
      end
      pos = z + 1
    end
    -- nil fields make no key, only room: the table is made with a power of two of
    -- hash slots for its fields, so as many as take it to ROOM slots to spare
    -- (each nil field still costs a set when the constructor runs)
    local slots = 1
    while slots < n + ROOM do
      slots = slots * 2
    end
    for k = 1, slots // 2 + 1 - n do
      fields[n + k] = sformat("[%q] = nil, ", "\0room" .. k)
    end
    local source = "local a, i = ...\nreturn { " .. tconcat(fields) .. "}, " .. n
    build = assert(real_load(source, "=pyao-host-msg", "t", {}))
    if nshapes < 64 then
      nshapes = nshapes + 1
      shapes[shape], shape_normal[shape] = build, normal
    end
    return build, normal
  end
  return build, shape_normal[shape]
end

-- One message from the batch's arguments at a[i]: "j", its JSON; or "s",
-- shape, one value per name of the shape (nil: no such field; the place of
-- "Tags" is nil too), then ntags (-1: no Tags), name1, value1, ...
local function read_msg(a, i)
  if a[i] == "j" then
    fresh_msg = nil
    return host_json.decode(a[i + 1]), i + 2
  end
  local build, normal = shape_builder(a[i + 1])
  local msg, n = build(a, i + 1)
  fresh_msg, fresh_normal = msg, normal
  i = i + n + 2
  local nt = a[i]
  i = i + 1
  if nt >= 0 then
    local tags = nt <= 4 and { nil, nil, nil, nil } or {} -- (room for four at once: no growing step by step)
    for j = 1, nt do
      tags[j] = { name = a[i], value = a[i + 1] }
      i = i + 2
    end
    msg.Tags = tags
  end
  return msg, i
end

--- handle_batch(budget, env_json, allowance, per_message, count, msg...) -> for each message run: ok, gas, result
--- Runs the messages in order under one env. Stops after the first that
--- fails (its state must be rolled back), once the output holds more than
--- MAX_FLAT values, and after the one whose gas + per_message brings the allowance
--- to 0 or below (its state is then due to be written).
function host.handle_batch(budget, env_json, allowance, per_message, count, ...)
  flat.reset()
  local a = { ... }
  local out, no, i = {}, 0, 1
  for _ = 1, count do
    local msg
    msg, i = read_msg(a, i)
    local failed, gas
    no, failed, gas = run(msg, env_for(env_json), budget, out, no)
    allowance = allowance - gas - per_message
    if failed or allowance <= 0 or no > MAX_FLAT then
      break
    end
  end
  return tunpack(out, 1, no)
end


-- ------------------------------------------------------------ serialisation
-- (_host_state.lua) Given the sandbox, the hidden state and the stable ids.
assert(real_load(STATE_SOURCE, "=pyao-host-state", "t", {
  string = string, table = table, math = math, debug = { getinfo = d_getinfo, getupvalue = d_getupvalue,
    setupvalue = d_setupvalue, upvalueid = d_upvalueid, upvaluejoin = d_upvaluejoin,
    getmetatable = d_getmetatable, setmetatable = d_setmetatable },
  load = real_load, type = type, next = next, ipairs = ipairs, rawget = rawget, rawset = rawset,
  assert = assert, error = error, pcall = pcall, tostring = tostring,
}))(host, function()
  return E
end, S, ids, function()
  return nextid
end, function(n)
  nextid = n
end, sorted_keys)

return host
