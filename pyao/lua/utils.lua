-- utils: pattern matching for Handlers, plus a few list helpers (aos `Utils`).

local utils = { _version = "pyao-1" }

-- Lua pattern characters that switch a string spec to pattern matching. A lone
-- '-' does not: ids and addresses are full of dashes and must compare exactly.
local MAGIC = "[%^%$%(%)%%%.%[%]%*%+%?]"

--- Does one pattern accept a value? A pattern is '_' (anything), a function
--- (value, msg) -> truthy, a string (compared case-insensitively; a string
--- holding Lua pattern characters is matched as a Lua pattern), or a table of
--- alternatives.
function utils.matchesPattern(pattern, value, msg)
  if pattern == nil or pattern == false then
    return false
  end
  if pattern == "_" then
    return true
  end
  local ty = type(pattern)
  if ty == "function" then
    return pattern(value, msg) and true or false
  elseif ty == "string" then
    local v = string.lower(tostring(value or ""))
    local p = string.lower(pattern)
    if pattern:find(MAGIC) then
      return string.match(v, p) ~= nil
    end
    return v == p
  elseif ty == "table" then
    for _, alt in ipairs(pattern) do
      if utils.matchesPattern(alt, value, msg) then
        return true
      end
    end
    return false
  end
  return false
end

--- Does a message satisfy a spec? A function spec returns its own verdict, a
--- table spec needs every key present and matching, a string spec is an Action.
function utils.matchesSpec(msg, spec)
  local ty = type(spec)
  if ty == "function" then
    return spec(msg)
  elseif ty == "table" then
    for key, pattern in pairs(spec) do
      if msg[key] == nil then
        return false
      end
      if not utils.matchesPattern(pattern, msg[key], msg) then
        return false
      end
    end
    return true
  elseif ty == "string" then
    return msg.Action ~= nil and msg.Action == spec
  end
  return false
end

--- "content_type" / "content-TYPE" -> "Content-Type".
function utils.normalize(key)
  if type(key) ~= "string" then
    return key
  end
  local s = key:gsub("_", "-"):lower()
  s = s:gsub("^%l", string.upper)
  s = s:gsub("%-(%l)", function(c)
    return "-" .. c:upper()
  end)
  return s
end

function utils.map(f, list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = f(v, i)
  end
  return out
end

function utils.filter(f, list)
  local out = {}
  for _, v in ipairs(list) do
    if f(v) then
      out[#out + 1] = v
    end
  end
  return out
end

function utils.reduce(f, acc, list)
  for i, v in ipairs(list) do
    acc = f(acc, v, i)
  end
  return acc
end

function utils.find(f, list)
  for _, v in ipairs(list) do
    if f(v) then
      return v
    end
  end
  return nil
end

function utils.includes(value, list)
  for _, v in ipairs(list) do
    if v == value then
      return true
    end
  end
  return false
end

function utils.keys(t)
  local out = {}
  for k in pairs(t) do
    out[#out + 1] = k
  end
  return out
end

function utils.values(t)
  local out = {}
  for _, v in pairs(t) do
    out[#out + 1] = v
  end
  return out
end

function utils.propEq(name, value)
  return function(t)
    return t[name] == value
  end
end

function utils.concat(a, b)
  local out = {}
  for _, v in ipairs(a) do
    out[#out + 1] = v
  end
  for _, v in ipairs(b) do
    out[#out + 1] = v
  end
  return out
end

return utils
