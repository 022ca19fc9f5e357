-- handlers: the ordered handler list of an aos process.
--
-- A handler is {name, pattern, handle, maxRuns}. For each message the list is
-- walked in order (skipping "_default"); a pattern's verdict is -1/true/"break"
-- (run, then stop), 1/"continue" (run, go on) or 0/false/anything else (skip).
-- If no handler "broke", "_default" runs. A handler whose maxRuns reaches 0 is
-- removed. Handlers.receive parks the running coroutine until a message that
-- matches arrives.

local _, private = ...
local raw_move = private and private.move -- see _host.lua; nil when loaded by Eval
local raw_unpack = private and table.unpack -- (the real one: taken at boot, before process code runs)
local utils = require("utils")
local default_matches = utils.matchesSpec

local handlers = { _version = "pyao-1", list = {}, onceNonce = 0 }

local function index_of(name)
  local list = handlers.list
  local i, h = 1, list[1]
  while h ~= nil do -- ipairs, without a call into C per element
    if h.name == name then
      return i
    end
    i = i + 1
    h = list[i]
  end
  return nil
end

local function resolver(handle)
  if type(handle) == "function" then
    return handle
  end
  assert(type(handle) == "table", "handle must be a function or a table of {pattern = function}")
  return function(msg, env)
    for spec, f in pairs(handle) do
      if utils.matchesSpec(msg, spec) then
        return f(msg, env)
      end
    end
  end
end

local function check(name, pattern)
  assert(type(name) == "string", "handler name must be a string")
  local ty = type(pattern)
  assert(ty == "function" or ty == "table" or ty == "string", "pattern must be a string (Action), a table or a function")
end

-- (name, handle) | (name, pattern, handle[, maxRuns])
local function args(...)
  local n = select("#", ...)
  local name, pattern, handle, maxRuns = ...
  if n == 2 then
    return name, name, pattern, nil
  end
  return name, pattern, handle, maxRuns
end

local function put(where, ...)
  local name, pattern, handle, maxRuns = args(...)
  check(name, pattern)
  handle = resolver(handle)
  local i = index_of(name)
  if i then
    local h = handlers.list[i]
    h.pattern, h.handle, h.maxRuns = pattern, handle, maxRuns
  elseif where == "front" then
    table.insert(handlers.list, 1, { name = name, pattern = pattern, handle = handle, maxRuns = maxRuns })
  else
    table.insert(handlers.list, { name = name, pattern = pattern, handle = handle, maxRuns = maxRuns })
  end
  return #handlers.list
end

function handlers.add(...)
  return put("back", ...)
end

function handlers.append(...)
  return put("back", ...)
end

function handlers.prepend(...)
  return put("front", ...)
end

--- once(pattern, handle) or once(name, pattern, handle): prepended, runs once.
function handlers.once(...)
  local name, pattern, handle
  if select("#", ...) == 3 then
    name, pattern, handle = ...
  else
    name = "_once_" .. tostring(handlers.onceNonce)
    handlers.onceNonce = handlers.onceNonce + 1
    pattern, handle = ...
  end
  return put("front", name, pattern, handle, 1)
end

local function insert_near(target, offset)
  assert(type(target) == "string", "handler name must be a string")
  return {
    add = function(name, pattern, handle, maxRuns)
      check(name, pattern)
      local i = index_of(target)
      if i then
        table.insert(
          handlers.list,
          i + offset,
          { name = name, pattern = pattern, handle = resolver(handle), maxRuns = maxRuns }
        )
      end
    end,
  }
end

function handlers.before(name)
  return insert_near(name, 0)
end

function handlers.after(name)
  return insert_near(name, 1)
end

function handlers.remove(name)
  assert(type(name) == "string", "handler name must be a string")
  local i = index_of(name)
  if i then
    table.remove(handlers.list, i)
  end
end

--- Park the running coroutine until a message matching `pattern` arrives;
--- returns that message.
function handlers.receive(pattern)
  local co = coroutine.running()
  handlers.once(pattern, function(msg)
    local ok, err = coroutine.resume(co, msg)
    if not ok then
      error(err, 0)
    end
  end)
  return coroutine.yield(pattern)
end

local function verdict(match)
  local ty = type(match)
  if match == true or match == "break" then
    return -1
  elseif match == false or match == nil then
    return 0
  elseif match == "continue" then
    return 1
  elseif ty == "number" then
    return match < 0 and -1 or (match > 0 and 1 or 0)
  elseif ty == "string" then
    return 0
  end
  error("pattern result must be a boolean, number or string", 0)
end

function handlers.evaluate(msg, env)
  -- walk a copy: handlers added while evaluating wait for the next message,
  -- handlers removed while evaluating do not run
  local list = handlers.list
  local snapshot
  if raw_move and getmetatable(list) == nil then -- a plain table: #list is bounded by its size
    local n = #list
    if n <= 200 then
      snapshot = { raw_unpack(list, 1, n) } -- made at its size at once (move into {} grows it step by step)
    else
      snapshot = raw_move(list, 1, n, 1, {})
    end
  else
    snapshot = table.move(list, 1, #list, 1, {})
  end
  local i = 1
  local h = snapshot[1]
  while h ~= nil do -- as ipairs, without its iterator calls
    -- still listed (by name)? handlers.list[i] == h answers yes at once while the list is unchanged
    if h.name ~= "_default" and (handlers.list[i] == h or index_of(h.name)) then
      local pattern, m = h.pattern, nil
      if type(pattern) == "function" and utils.matchesSpec == default_matches then
        m = pattern(msg) -- what matchesSpec does with a function, without the call
      else
        m = utils.matchesSpec(msg, pattern)
      end
      local v -- verdict(m), with the common answers first
      if m == 0 or m == false or m == nil then
        v = 0
      elseif m == -1 or m == true then
        v = -1
      else
        v = verdict(m)
      end
      if v ~= 0 then
        if h.maxRuns ~= nil and h.maxRuns ~= "inf" then
          h.maxRuns = h.maxRuns - 1
          if h.maxRuns <= 0 then
            handlers.remove(h.name)
          end
        end
        h.handle(msg, env)
        if v < 0 then
          return true
        end
      end
    end
    i = i + 1
    h = snapshot[i]
  end
  local d = index_of("_default")
  if d then
    handlers.list[d].handle(msg, env)
  end
  return false
end

-- handler helpers (aos `Handlers.utils`)
handlers.utils = {}

function handlers.utils.hasMatchingTag(name, value)
  return function(msg)
    return msg.Tags[name] == value and -1 or 0
  end
end

function handlers.utils.hasMatchingTagOf(name, values)
  return function(msg)
    for _, v in ipairs(values) do
      if msg.Tags[name] == v then
        return -1
      end
    end
    return 0
  end
end

function handlers.utils.hasMatchingData(value)
  return function(msg)
    return msg.Data == value and -1 or 0
  end
end

function handlers.utils.reply(input)
  return function(msg)
    msg.reply(type(input) == "string" and { Data = input } or input)
  end
end

function handlers.utils.continue(pattern)
  return function(msg)
    local v = verdict(utils.matchesSpec(msg, pattern))
    return v ~= 0 and 1 or 0
  end
end

return handlers
