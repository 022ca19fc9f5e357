-- json: a small JSON codec for pyao's aos-compatible library.
--
-- encode: nil -> null, booleans, integers as integers, floats with 14
-- significant digits, strings escaped, a table with keys 1..n (or no keys) as
-- an array, any other table as an object with its keys in sorted order (keys
-- must be strings). Cycles, NaN and infinities are errors.
-- decode: the usual grammar; integers stay integers, null becomes nil.

local json = { _version = "pyao-1" }

-- the raw pattern functions when loaded by the VM (see _host.lua): every
-- pattern here runs in linear time, so it need not be charged as process code's are
local _, private = ...
local find = private and private.find or string.find
local match = private and private.match or string.match
local gsub = private and private.gsub or string.gsub

local escapes = {
  ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t",
}

local function escape_char(c)
  return escapes[c] or string.format("\\u%04x", c:byte())
end

local function encode_string(s)
  return '"' .. gsub(s, '[%c"\\]', escape_char) .. '"'
end

local encode

local function is_array(t)
  local n = rawlen(t)
  local count = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      return false, n
    end
    count = count + 1
  end
  return count == n, n
end

local function encode_table(t, stack)
  if stack[t] then
    error("json: circular reference", 0)
  end
  stack[t] = true
  local out = {}
  local array, n = is_array(t)
  local result
  if array then
    for i = 1, n do
      out[i] = encode(t[i], stack)
    end
    result = "[" .. table.concat(out, ",") .. "]"
  else
    local keys = {}
    for k in pairs(t) do
      if type(k) ~= "string" then
        error("json: object keys must be strings, got " .. type(k), 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for i, k in ipairs(keys) do
      out[i] = encode_string(k) .. ":" .. encode(t[k], stack)
    end
    result = "{" .. table.concat(out, ",") .. "}"
  end
  stack[t] = nil
  return result
end

encode = function(v, stack)
  local ty = type(v)
  if ty == "nil" then
    return "null"
  elseif ty == "boolean" then
    return v and "true" or "false"
  elseif ty == "number" then
    if math.type(v) == "integer" then
      return string.format("%d", v)
    end
    if v ~= v or v == math.huge or v == -math.huge then
      error("json: cannot encode " .. tostring(v), 0)
    end
    return string.format("%.14g", v)
  elseif ty == "string" then
    return encode_string(v)
  elseif ty == "table" then
    return encode_table(v, stack)
  end
  error("json: cannot encode a " .. ty, 0)
end

function json.encode(v)
  return encode(v, {})
end

-- ------------------------------------------------------------------ decode

local decode_value

local function fail(s, i, what)
  error(string.format("json: %s at position %d", what, i), 0)
end

local function skip(s, i)
  return (find(s, "[^ \t\r\n]", i)) or #s + 1
end

local function utf8_of(cp)
  return utf8.char(cp)
end

local function decode_string(s, i)
  local parts, n = {}, 0
  local j = i + 1
  while true do
    local a, b = find(s, '["\\%c]', j)
    if not a then
      fail(s, i, "unterminated string")
    end
    n = n + 1
    parts[n] = s:sub(j, a - 1)
    local c = s:sub(a, a)
    if c == '"' then
      return table.concat(parts), b + 1
    elseif c == "\\" then
      local e = s:sub(a + 1, a + 1)
      local simple = ({ b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" })[e]
      if simple then
        n = n + 1
        parts[n] = simple
        j = a + 2
      elseif e == "u" then
        local hex = match(s, "^%x%x%x%x", a + 2)
        if not hex then
          fail(s, a, "bad unicode escape")
        end
        local cp = tonumber(hex, 16)
        j = a + 6
        if cp >= 0xD800 and cp <= 0xDBFF then
          local lo = match(s, "^\\u(%x%x%x%x)", j)
          if lo and tonumber(lo, 16) >= 0xDC00 and tonumber(lo, 16) <= 0xDFFF then
            cp = 0x10000 + ((cp - 0xD800) << 10) + (tonumber(lo, 16) - 0xDC00)
            j = j + 6
          end
        end
        n = n + 1
        parts[n] = utf8_of(cp)
      else
        fail(s, a, "bad escape")
      end
    else
      fail(s, a, "control character in string")
    end
  end
end

local function decode_number(s, i)
  local num = match(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", i)
  if not num or num == "" or num == "-" then
    fail(s, i, "bad number")
  end
  local v
  if find(num, "^-?%d+$") then
    v = math.tointeger(tonumber(num)) or tonumber(num)
  else
    v = tonumber(num)
  end
  if v == nil then
    fail(s, i, "bad number")
  end
  return v, i + #num
end


local function decode_array(s, i)
  local out, n = {}, 0
  i = skip(s, i + 1)
  if s:sub(i, i) == "]" then
    return out, i + 1
  end
  while true do
    local v
    v, i = decode_value(s, i)
    n = n + 1
    out[n] = v
    i = skip(s, i)
    local c = s:sub(i, i)
    if c == "]" then
      return out, i + 1
    elseif c ~= "," then
      fail(s, i, "expected ',' or ']'")
    end
    i = skip(s, i + 1)
  end
end

local function decode_object(s, i)
  local out = {}
  i = skip(s, i + 1)
  if s:sub(i, i) == "}" then
    return out, i + 1
  end
  while true do
    if s:sub(i, i) ~= '"' then
      fail(s, i, "expected a string key")
    end
    local k
    k, i = decode_string(s, i)
    i = skip(s, i)
    if s:sub(i, i) ~= ":" then
      fail(s, i, "expected ':'")
    end
    local v
    v, i = decode_value(s, skip(s, i + 1))
    out[k] = v
    i = skip(s, i)
    local c = s:sub(i, i)
    if c == "}" then
      return out, i + 1
    elseif c ~= "," then
      fail(s, i, "expected ',' or '}'")
    end
    i = skip(s, i + 1)
  end
end

decode_value = function(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    return decode_object(s, i)
  elseif c == "[" then
    return decode_array(s, i)
  elseif c == '"' then
    return decode_string(s, i)
  elseif c == "-" or find(c, "%d") then
    return decode_number(s, i)
  end
  if s:sub(i, i + 3) == "true" then
    return true, i + 4
  elseif s:sub(i, i + 4) == "false" then
    return false, i + 5
  elseif s:sub(i, i + 3) == "null" then
    return nil, i + 4
  end
  fail(s, i, "unexpected character '" .. c .. "'")
end

function json.decode(s)
  if type(s) ~= "string" then
    error("json: expected a string, got " .. type(s), 0)
  end
  local v, i = decode_value(s, skip(s, 1))
  i = skip(s, i)
  if i <= #s then
    fail(s, i, "trailing garbage")
  end
  return v
end

return json
