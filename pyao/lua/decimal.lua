-- decimal: exact arithmetic on non-negative integers written as decimal
-- strings ("0", "42", "10000000000000000"), of any length.
--
-- Token amounts never pass through a float (aos keeps them as `bint` big
-- integers printed as strings; this is pyao's own, smaller, equivalent).
-- Numbers are cut into 9-digit limbs, so every intermediate value stays a
-- Lua integer.
--
--   decimal.parse(v)   -> canonical string, or nil: v is a string of digits
--                         (leading zeros dropped) or a non-negative integer
--   decimal.cmp(a, b)  -> -1 | 0 | 1
--   decimal.lt/le/eq(a, b) -> boolean
--   decimal.add(a, b), decimal.sub(a, b) -> canonical string (sub errors if a < b)
--   decimal.iszero(a)  -> boolean
--   decimal.pow10(n)   -> "1" followed by n zeros
--
-- Every function except parse raises an error on an operand that parse refuses.

local decimal = { _version = "pyao-1" }

local _, private = ...
local find = private and private.find or string.find -- raw: the patterns here are linear
local format = private and private.format or string.format -- raw: only integers are formatted here

local LIMB = 9
local BASE = 1000000000

-- The last four strings found canonical (parse gives them back as they are): a
-- Transfer meets its quantity and the two balances several times each. ("0" is
-- canonical too; no slot ever holds anything but a canonical string.)
local canon1, canon2, canon3, canon4 = "0", "0", "0", "0"

local function parse(v)
  if v == canon1 or v == canon2 or v == canon3 or v == canon4 then
    return v
  end
  if math.type(v) == "integer" then
    if v < 0 then
      return nil
    end
    return format("%d", v)
  end
  if type(v) ~= "string" then
    return nil
  end
  if find(v, "^[1-9]%d*$") or v == "0" then
    canon1, canon2, canon3, canon4 = v, canon1, canon2, canon3
    return v -- already canonical: the common case, one scan
  end
  if v == "" or find(v, "%D") then
    return nil
  end
  local start = find(v, "[1-9]")
  if not start then
    return "0"
  end
  return v:sub(start)
end
decimal.parse = parse

local function operand(v)
  if decimal.parse == parse then -- canonical already: parse's first cases, without the calls
    if v == canon1 or v == canon2 or v == canon3 or v == canon4 then
      return v
    end
    if type(v) == "string" and find(v, "^[1-9]%d*$") then
      canon1, canon2, canon3, canon4 = v, canon1, canon2, canon3
      return v
    end
  end
  local s = decimal.parse(v)
  if s == nil then
    error("decimal: not a non-negative integer: " .. tostring(v), 3)
  end
  return s
end

-- little-endian 9-digit limbs
local function limbs(s)
  local out, n, i = {}, 0, #s
  while i >= 1 do
    local j = i - LIMB + 1
    if j < 1 then
      j = 1
    end
    n = n + 1
    out[n] = math.tointeger(tonumber(s:sub(j, i)))
    i = j - 1
  end
  return out, n
end

local function join(l, n)
  while n > 1 and l[n] == 0 do
    n = n - 1
  end
  local parts = { format("%d", l[n]) }
  for i = n - 1, 1, -1 do
    parts[#parts + 1] = format("%09d", l[i])
  end
  return table.concat(parts)
end

local function compare(a, b)
  if #a ~= #b then
    return #a < #b and -1 or 1
  end
  if a == b then
    return 0
  end
  return a < b and -1 or 1
end

function decimal.cmp(a, b)
  return compare(operand(a), operand(b))
end

function decimal.lt(a, b)
  return compare(operand(a), operand(b)) < 0
end

function decimal.le(a, b)
  return compare(operand(a), operand(b)) <= 0
end

function decimal.eq(a, b)
  return operand(a) == operand(b)
end

function decimal.iszero(a)
  return operand(a) == "0"
end

-- Up to 18 digits both ways, the sum and the difference fit a Lua integer.
local SMALL = 18

function decimal.add(a, b)
  a, b = operand(a), operand(b)
  if #a <= SMALL and #b <= SMALL then
    return format("%d", tonumber(a) + tonumber(b))
  end
  local x, nx = limbs(a)
  local y, ny = limbs(b)
  local out, carry = {}, 0
  local n = nx > ny and nx or ny
  for i = 1, n do
    local s = (x[i] or 0) + (y[i] or 0) + carry
    if s >= BASE then
      out[i], carry = s - BASE, 1
    else
      out[i], carry = s, 0
    end
  end
  if carry > 0 then
    n = n + 1
    out[n] = carry
  end
  return join(out, n)
end

function decimal.sub(a, b)
  a, b = operand(a), operand(b)
  if compare(a, b) < 0 then
    error("decimal: " .. a .. " - " .. b .. " is negative", 2)
  end
  if #a <= SMALL then
    return format("%d", tonumber(a) - tonumber(b))
  end
  local x, nx = limbs(a)
  local y = limbs(b)
  local out, borrow = {}, 0
  for i = 1, nx do
    local d = x[i] - (y[i] or 0) - borrow
    if d < 0 then
      out[i], borrow = d + BASE, 1
    else
      out[i], borrow = d, 0
    end
  end
  return join(out, nx)
end

function decimal.pow10(n)
  n = math.tointeger(n)
  if n == nil or n < 0 then
    error("decimal.pow10: a non-negative integer is required", 2)
  end
  return "1" .. string.rep("0", n)
end

return decimal
