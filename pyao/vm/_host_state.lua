-- Host side of the native Lua VM, part 4: the state as canonical bytes.
--
-- Contract: loaded by _host.lua with the real base functions as its env and
-- `host` plus the host's shared state as arguments; adds host.mark_permanent(),
-- host.serialize() -> bytes | nil, reason, and host.deserialize(bytes).
--
-- Objects are found breadth-first from the roots {E, S, string metatable
-- __index}. Everything reachable right after boot is "permanent": the same
-- object exists in every fresh runtime built from the same library and module,
-- so it is written by its boot-time index and restored in place. C functions
-- and host functions are opaque (never looked into); our library's and the
-- module's Lua functions are permanent but their upvalues are written; any
-- later Lua function is written with string.dump. Threads, userdata and
-- C closures made after boot cannot be written: serialize() then says why.

local host, sandbox, S, ids, get_nextid, set_nextid, sorted_keys = ...
local d_getinfo, d_getupvalue, d_setupvalue = debug.getinfo, debug.getupvalue, debug.setupvalue
local d_upvalueid, d_upvaluejoin = debug.upvalueid, debug.upvaluejoin
local d_getmetatable, d_setmetatable = debug.getmetatable, debug.setmetatable
local sdump, spack, sunpack, ssub = string.dump, string.pack, string.unpack, string.sub
local tconcat, mtype, real_load = table.concat, math.type, load

local perm_index, perm_list = {}, {} -- object -> pid, pid -> object

local function is_opaque(f)
  local info = d_getinfo(f, "S")
  return info.what == "C" or ssub(info.source, 1, 10) == "=pyao-host"
end

local function roots()
  return { sandbox(), S, d_getmetatable("").__index }
end

local function upvalues_of(f, visit)
  local i = 1
  while true do
    local name, v = d_getupvalue(f, i)
    if name == nil then
      break
    end
    visit(v)
    i = i + 1
  end
end

function host.mark_permanent()
  perm_index, perm_list = {}, {}
  local queue, head = roots(), 1
  for i, o in ipairs(queue) do
    perm_index[o] = i
    perm_list[i] = o
  end
  local function visit(v)
    local ty = type(v)
    if (ty == "table" or ty == "function") and not perm_index[v] then
      perm_list[#perm_list + 1] = v
      perm_index[v] = #perm_list
      queue[#queue + 1] = v
    end
  end
  while head <= #queue do
    local o = queue[head]
    head = head + 1
    if type(o) == "table" then
      visit(d_getmetatable(o))
      local keys, n = sorted_keys(o, false)
      for i = 1, n do
        visit(keys[i])
        visit(rawget(o, keys[i]))
      end
    elseif not is_opaque(o) then
      upvalues_of(o, visit)
    end
  end
  return #perm_list
end

local V_NIL, V_FALSE, V_TRUE, V_INT, V_FLT, V_STR, V_REF = 0, 1, 2, 3, 4, 5, 6

function host.serialize()
  local out, no = {}, 0
  local index, list = {}, {}
  local upowner = {} -- upvalueid -> {objidx, n}
  local function ref(o)
    local i = index[o]
    if not i then
      list[#list + 1] = o
      i = #list
      index[o] = i
    end
    return i
  end
  local function put(s)
    no = no + 1
    out[no] = s
  end
  local function value(v)
    local ty = type(v)
    if v == nil then
      put(spack("B", V_NIL))
    elseif v == false then
      put(spack("B", V_FALSE))
    elseif v == true then
      put(spack("B", V_TRUE))
    elseif ty == "number" then
      if mtype(v) == "integer" then
        put(spack("<Bj", V_INT, v))
      else
        put(spack("<Bd", V_FLT, v))
      end
    elseif ty == "string" then
      put(spack("<Bs4", V_STR, v))
    elseif ty == "table" or ty == "function" then
      put(spack("<BI4", V_REF, ref(v)))
    else
      error("cannot serialize a " .. ty, 0)
    end
  end
  local function upvals(f, fi)
    local nup = 0
    while d_getupvalue(f, nup + 1) ~= nil do
      nup = nup + 1
    end
    put(spack("<I2", nup))
    for i = 1, nup do
      local uid = d_upvalueid(f, i)
      local own = upowner[uid]
      if own then
        put(spack("<I4I2", own[1], own[2]))
      else
        upowner[uid] = { fi, i }
        put(spack("<I4I2", 0, 0))
        local _, v = d_getupvalue(f, i)
        value(v)
      end
    end
  end
  local ok, err = pcall(function()
    for _, r in ipairs(roots()) do
      ref(r)
    end
    local i = 0
    while i < #list do
      i = i + 1
      local o = list[i]
      local pid = perm_index[o] or 0
      if type(o) == "table" then
        put(spack("<BI4", 84, pid)) -- 'T'
        value(d_getmetatable(o))
        local keys, n = sorted_keys(o, false)
        put(spack("<I4", n))
        for j = 1, n do
          value(keys[j])
          value(rawget(o, keys[j]))
        end
      elseif pid > 0 and is_opaque(o) then
        put(spack("<BI4", 79, pid)) -- 'O'
      elseif pid > 0 then
        put(spack("<BI4", 80, pid)) -- 'P'
        upvals(o, i)
      elseif is_opaque(o) then
        error("cannot serialize a C function made after boot", 0)
      else
        put(spack("<Bs4", 70, sdump(o))) -- 'F'
        upvals(o, i)
      end
    end
    -- stable ids (ordering of object keys, tostring), assigned lazily
    local pairs_out = {}
    for j = 1, #list do
      local id = ids[list[j]]
      if id then
        pairs_out[#pairs_out + 1] = spack("<I4j", j, id)
      end
    end
    put(spack("<jI4", get_nextid(), #pairs_out))
    put(tconcat(pairs_out))
  end)
  if not ok then
    return nil, tostring(err)
  end
  return spack("<I4", #list) .. tconcat(out, "", 1, no), nil
end

function host.deserialize(data)
  local pos = 1
  local function read(fmt)
    local a, b, c = sunpack(fmt, data, pos)
    if c then
      pos = c
      return a, b
    end
    pos = b
    return a
  end
  local count = read("<I4")
  local objs, fills = {}, {}
  local function value()
    local tag = read("B")
    if tag == V_NIL then
      return nil
    elseif tag == V_FALSE then
      return false
    elseif tag == V_TRUE then
      return true
    elseif tag == V_INT then
      return read("<j")
    elseif tag == V_FLT then
      return read("<d")
    elseif tag == V_STR then
      return read("<s4")
    elseif tag == V_REF then
      return { ref = read("<I4") }
    end
    error("bad value tag " .. tostring(tag))
  end
  local function upvals()
    local ups = {}
    for i = 1, read("<I2") do
      local oi, on = read("<I4I2")
      if oi > 0 then
        ups[i] = { join = oi, n = on }
      else
        ups[i] = { v = value() }
      end
    end
    return ups
  end
  -- pass 1: parse records and make (or find) every object
  for i = 1, count do
    local kind = read("B")
    if kind == 84 then
      local pid = read("<I4")
      local rec = { kind = "T", mt = value(), entries = {} }
      for j = 1, read("<I4") * 2 do
        rec.entries[j] = value()
      end
      objs[i] = pid > 0 and perm_list[pid] or {}
      assert(objs[i], "snapshot does not match this library")
      fills[i] = rec
    elseif kind == 79 or kind == 80 then
      local pid = read("<I4")
      objs[i] = assert(perm_list[pid], "snapshot does not match this library")
      fills[i] = kind == 80 and { kind = "F", ups = upvals() } or { kind = "O" }
    elseif kind == 70 then
      objs[i] = assert(real_load(read("<s4"), "=(snapshot)", "b", sandbox()))
      fills[i] = { kind = "F", ups = upvals() }
    else
      error("bad record kind " .. tostring(kind))
    end
  end
  local function resolve(v)
    if type(v) == "table" then
      return objs[v.ref]
    end
    return v
  end
  -- pass 2: fill tables in place, set upvalues
  for i = 1, count do
    local o, rec = objs[i], fills[i]
    if rec.kind == "T" then
      local old = {}
      for k in next, o do
        old[#old + 1] = k
      end
      for _, k in ipairs(old) do
        rawset(o, k, nil)
      end
      d_setmetatable(o, resolve(rec.mt))
      local e = rec.entries
      for j = 1, #e, 2 do
        rawset(o, resolve(e[j]), resolve(e[j + 1]))
      end
    elseif rec.kind == "F" then
      for n, u in ipairs(rec.ups) do
        if u.join then
          d_upvaluejoin(o, n, objs[u.join], u.n)
        else
          d_setupvalue(o, n, resolve(u.v))
        end
      end
    end
  end
  local nid, npairs = read("<jI4")
  set_nextid(nid)
  for k in next, ids do
    ids[k] = nil
  end
  for _ = 1, npairs do
    local j, id = read("<I4j")
    ids[objs[j]] = id
  end
  return true
end
