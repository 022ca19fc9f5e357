-- Host side of the native Lua VM, part 2: C loops under the meter.
--
-- The count hook sees Lua instructions only: a C function that loops without
-- running Lua (a backtracking pattern, string.rep of an empty string, table.move
-- or table.insert over a huge __len) would run past the compute limit. Those are
-- guarded: pattern functions are charged a bound of their matcher's work first
-- (and refused past the budget), the table functions are written in Lua.
--
-- Contract: loaded by _host.lua with the real base functions as its env and
-- `charge(steps)` (adds matcher steps to the message's gas, or ends it with
-- "compute limit exceeded") and `metering()` (true while a message runs) as
-- arguments; returns the guarded functions (find, match, gmatch, gsub, rep,
-- insert, remove, move) for the sandbox's string and table.

local charge, metering = ...
local real_find, real_match, real_gmatch, real_gsub = string.find, string.match, string.gmatch, string.gsub
local sfind, srep, ssub = string.find, string.rep, string.sub
local mtype, d_getmetatable = math.type, debug_getmetatable

-- How many characters of s the single-character class `class` matches.
local function class_count(s, class, counts)
  local c = counts[class]
  if c == nil then
    if class == "." then
      c = #s
    else
      local pat = class
      if #class == 1 and sfind(class, "^%p") then
        pat = "%" .. class
      end
      local ok, _, n = pcall(real_gsub, s, pat, "")
      c = ok and n or #s
    end
    counts[class] = c
  end
  return c
end

-- An upper bound of the steps Lua's backtracking matcher can take for pattern p
-- on s from init: the start positions tried, times for each quantified item the
-- number of lengths it can try (at most one more than the characters of s its
-- class matches), times the pattern's length. Sound, loose, computed in linear time.
local function pattern_bound(s, p, init)
  init = init or 1
  if init < 0 then
    init = #s + init + 1
  end
  if init > 1 then
    s = ssub(s, init)
  end
  local n, m = #s, #p
  local bound, i, counts = n + 1.0, 1, {}
  if ssub(p, 1, 1) == "^" then
    bound, i = 1.0, 2
  end
  while i <= m do
    local c, start = ssub(p, i, i), i
    local quantifiable = true
    if c == "(" or c == ")" then
      i, quantifiable = i + 1, false
    elseif c == "%" then
      local d = ssub(p, i + 1, i + 1)
      if d == "b" then
        bound, i, quantifiable = bound * (n + 1), i + 4, false
      elseif d == "f" then
        i, quantifiable = i + 2, false
        c = ssub(p, i, i)
      elseif sfind(d, "^%d") then
        bound, i, quantifiable = bound * (n + 1), i + 2, false
      else
        i = i + 2
      end
    end
    if c == "[" then -- a set: as Lua's matcher reads it (the first ']' is literal)
      i = i + 1
      if ssub(p, i, i) == "^" then
        i = i + 1
      end
      repeat
        if ssub(p, i, i) == "%" then
          i = i + 1
        end
        i = i + 1
      until i > m or ssub(p, i, i) == "]"
      i = i + 1
    elseif c ~= "%" and c ~= "(" and c ~= ")" then
      i = i + 1
    end
    if quantifiable then
      local q = ssub(p, i, i)
      if q == "*" or q == "+" or q == "-" then
        bound = bound * (class_count(s, ssub(p, start, i - 1), counts) + 1)
        i = i + 1
      elseif q == "?" then
        bound, i = bound * 2, i + 1
      end
    end
  end
  return bound * (m + 1)
end

local function guard_pattern(s, p, init, plain)
  local ts = type(s)
  if (ts == "string" or ts == "number") and type(p) == "string" and metering() then
    s = tostring(s)
    if plain or not sfind(p, "[%^%$%*%+%?%.%(%[%%%-]") then
      charge(#s + #p)
    else
      charge(pattern_bound(s, p, math.tointeger(init)))
    end
  end
end

local guarded = {}

function guarded.find(s, p, init, plain)
  guard_pattern(s, p, init, plain)
  return real_find(s, p, init, plain)
end

function guarded.match(s, p, init)
  guard_pattern(s, p, init)
  return real_match(s, p, init)
end

function guarded.gmatch(s, p)
  guard_pattern(s, p) -- every start position, once: the whole iteration's bound
  return real_gmatch(s, p)
end

function guarded.gsub(s, p, repl, n)
  guard_pattern(s, p)
  return real_gsub(s, p, repl, n)
end

function guarded.rep(s, n, sep)
  if (type(s) == "string" and s == "") and (sep == nil or sep == "") and math.tointeger(n) then
    return "" -- the C loop would spin n times copying nothing
  end
  return srep(s, n, sep)
end

-- table.insert / remove / move as in Lua 5.3's ltablib.c, in Lua, so their
-- loops are metered (with a __len of 2^60 the C loops never end).
-- (errors at level 0: a C function's errors carry no position)
local function aux_len(t, fname)
  local mt = d_getmetatable(t)
  if type(t) ~= "table" and not (mt and rawget(mt, "__len") and rawget(mt, "__index") and rawget(mt, "__newindex")) then
    error("bad argument #1 to '" .. fname .. "' (table expected, got " .. (t == nil and "no value" or type(t)) .. ")", 0)
  end
  local n = #t
  if mtype(n) ~= "integer" then
    n = math.tointeger(n)
    if n == nil then
      error("object length is not an integer", 0)
    end
  end
  return n
end

local function int_arg(v, narg, fname)
  local i = math.tointeger(v)
  if i == nil then
    local why = type(v) == "number" and "number has no integer representation"
      or ("number expected, got " .. (v == nil and "no value" or type(v)))
    error("bad argument #" .. narg .. " to '" .. fname .. "' (" .. why .. ")", 0)
  end
  return i
end

function guarded.insert(t, ...)
  local nargs = select("#", ...)
  if nargs == 1 and type(t) == "table" and d_getmetatable(t) == nil then
    t[rawlen(t) + 1] = ... -- the common append, as the C version does it
    return
  end
  local e = aux_len(t, "insert") + 1
  if nargs == 1 then
    t[e] = ...
    return
  elseif nargs ~= 2 then
    error("wrong number of arguments to 'insert'", 0)
  end
  local pos, v = ...
  pos = int_arg(pos, 2, "insert")
  if pos < 1 or pos > e then
    error("bad argument #2 to 'insert' (position out of bounds)", 0)
  end
  for i = e, pos + 1, -1 do
    t[i] = t[i - 1]
  end
  t[pos] = v
end

function guarded.remove(t, pos)
  local size = aux_len(t, "remove")
  pos = pos == nil and size or int_arg(pos, 2, "remove")
  if pos ~= size and (pos < 1 or pos > size + 1) then
    error("bad argument #1 to 'remove' (position out of bounds)", 0)
  end
  local v = t[pos]
  while pos < size do
    t[pos] = t[pos + 1]
    pos = pos + 1
  end
  t[pos] = nil
  return v
end

function guarded.move(a1, f, e, t, a2)
  if a2 == nil then
    a2 = a1
  end
  f, e, t = int_arg(f, 2, "move"), int_arg(e, 3, "move"), int_arg(t, 4, "move")
  if e >= f then
    if not (f > 0 or e < math.maxinteger + f) then
      error("bad argument #3 to 'move' (too many elements to move)", 0)
    end
    local n = e - f + 1
    if t > math.maxinteger - n + 1 then
      error("bad argument #4 to 'move' (destination wrap around)", 0)
    end
    if t > e or t <= f or (a1 ~= a2) then
      for i = 0, n - 1 do
        a2[t + i] = a1[f + i]
      end
    else
      for i = n - 1, 0, -1 do
        a2[t + i] = a1[f + i]
      end
    end
  end
  return a2
end

return guarded
