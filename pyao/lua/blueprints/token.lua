-- token blueprint: the ao Standard Token actions for a native Lua process.
--
-- pyao's own version, written from the behaviour of aos's token blueprint
-- (docs/lua-modules.md, "Blueprints"). Load it with `require("blueprints.token")`
-- (or `require(".token")`) in a module, or Eval its text, as aos's
-- `.load-blueprint token` does. Loading it again keeps the state: every global
-- below is only set when it is still nil.
--
-- State: Balances (address -> amount), TotalSupply, Name, Ticker, Logo,
-- Denomination. Amounts are non-negative integers written as decimal strings
-- (the `decimal` module), never floats. The initial supply, 10000 whole tokens
-- (10000 * 10^Denomination units), belongs to the process itself (ao.id).
--
-- Actions (each answers with msg.reply: Target = Reply-To or From, plus X-Reference):
--   Info           -> tags Name, Ticker, Logo, Denomination
--   Balance        -> tags Balance, Ticker, Account; Data = the balance of the
--                     Recipient tag, else the Target tag, else the sender
--   Balances       -> Data = JSON object of every balance
--   Transfer       -> Debit-Notice (to the sender) + Credit-Notice (to the
--                     Recipient), both carrying the X-* tags of the request;
--                     none with a Cast tag; Transfer-Error if the balance is short
--   Mint           -> only from the process itself (From == ao.id); else Mint-Error
--   Total-Supply   -> Action Total-Supply, Ticker; Data = TotalSupply
--   Burn           -> takes Quantity from the sender's balance and the supply
-- A missing or malformed Recipient/Quantity is an error: the message ends in
-- an Error result and changes nothing.

local _, private = ...
local unordered_next = private and private.unordered_next -- see _host.lua; nil when loaded by Eval
local json = require("json")
local decimal, NOT_X = require("decimal"), {} -- NOT_X: filled at the end of this file

Variant = "0.0.3"

Denomination = Denomination or 12
local decimals = math.tointeger(tonumber(Denomination))
assert(decimals and decimals >= 0, "Denomination must be a non-negative integer")
local initial_supply = "10000" .. string.rep("0", decimals)
Balances = Balances or { [ao.id] = initial_supply }
TotalSupply = TotalSupply or initial_supply
Name = Name or "Points Coin"
Ticker = Ticker or "PNTS"
Logo = Logo or "SBCCXwwecBlDqRLUjb8dYABExTJXLieawf7m2aBJ-KY"

local function action(name)
  return Handlers.utils.hasMatchingTag("Action", name)
end

-- The Quantity tag as a canonical positive amount, or an error with `why`.
local function quantity(msg, why)
  assert(type(msg.Quantity) == "string", "Quantity is required!")
  local q = decimal.parse(msg.Quantity)
  assert(q ~= nil and q ~= "0", why)
  return q
end

local function balance_of(account)
  return Balances[account] or "0"
end

-- "<gray>text <blue>amount<gray> to <green>who<reset>", as aos words its notices
local function notice(text, amount, tail) -- (with a tail: one concatenation, one string made)
  if tail then return Colors.gray .. text .. Colors.blue .. amount .. Colors.gray .. tail .. Colors.reset end
  return Colors.gray .. text .. Colors.blue .. amount .. "" .. Colors.reset
end
Handlers.add("info", action("Info"), function(msg)
  msg.reply({ Name = Name, Ticker = Ticker, Logo = Logo, Denomination = tostring(Denomination) })
end)

Handlers.add("balance", action("Balance"), function(msg)
  local bal
  if msg.Tags.Recipient then
    bal = balance_of(msg.Tags.Recipient)
  elseif msg.Tags.Target and Balances[msg.Tags.Target] then
    bal = Balances[msg.Tags.Target]
  else
    bal = balance_of(msg.From)
  end
  msg.reply({ Balance = bal, Ticker = Ticker, Account = msg.Tags.Recipient or msg.From, Data = bal })
end)

Handlers.add("balances", action("Balances"), function(msg)
  msg.reply({ Data = json.encode(Balances) })
end)

Handlers.add("transfer", action("Transfer"), function(msg)
  assert(type(msg.Recipient) == "string", "Recipient is required!")
  local q = quantity(msg, "Quantity must be greater than 0")
  local from, to = msg.From, msg.Recipient
  Balances[from] = Balances[from] or "0"
  Balances[to] = Balances[to] or "0"
  if decimal.lt(Balances[from], q) then
    msg.reply({ Action = "Transfer-Error", ["Message-Id"] = msg.Id, Error = "Insufficient Balance!" })
    return
  end
  Balances[from] = decimal.sub(Balances[from], q)
  Balances[to] = decimal.add(Balances[to], q)
  if msg.Cast then
    return
  end
  local debit = {
    Action = "Debit-Notice", Target = nil, -- (room for the Target msg.reply sets: no growing then)
    Recipient = to,
    Quantity = msg.Quantity,
    Data = notice("You transferred ", msg.Quantity, " to " .. Colors.green .. to),
  }
  local credit = {
    Target = to,
    Action = "Credit-Notice",
    Sender = from,
    Quantity = msg.Quantity,
    Data = notice("You received ", msg.Quantity, " from " .. Colors.green .. from),
  }
  -- copying into two tables: the order of the walk does not matter
  local walk, state, start
  if unordered_next and getmetatable(msg) == nil then
    walk, state = unordered_next, msg
  else
    walk, state, start = pairs(msg)
  end
  for name, value in walk, state, start do
    if not NOT_X[name] and type(name) == "string" and name:sub(1, 2) == "X-" then
      debit[name], credit[name] = value, value
    end
  end
  msg.reply(debit)
  Send(credit)
end)

Handlers.add("mint", action("Mint"), function(msg)
  local q = quantity(msg, "Quantity must be greater than zero!")
  Balances[ao.id] = Balances[ao.id] or "0"
  if msg.From ~= ao.id then
    msg.reply({
      Action = "Mint-Error",
      ["Message-Id"] = msg.Id,
      Error = "Only the Process Id can mint new " .. Ticker .. " tokens!",
    })
    return
  end
  Balances[ao.id] = decimal.add(Balances[ao.id], q)
  TotalSupply = decimal.add(TotalSupply, q)
  msg.reply({ Data = notice("Successfully minted ", msg.Quantity) })
end)

Handlers.add("totalSupply", action("Total-Supply"), function(msg)
  assert(msg.From ~= ao.id, "Cannot call Total-Supply from the same process!")
  msg.reply({ Action = "Total-Supply", Data = TotalSupply, Ticker = Ticker })
end)

Handlers.add("burn", action("Burn"), function(msg)
  local q = quantity(msg, "Quantity must be greater than 0")
  assert(decimal.le(q, balance_of(msg.From)), "Quantity must be less than or equal to the current balance!")
  Balances[msg.From] = decimal.sub(Balances[msg.From], q)
  TotalSupply = decimal.sub(TotalSupply, q)
  msg.reply({ Data = notice("Successfully burned ", msg.Quantity) })
end)

-- NOT_X: msg keys that do not start with "X-" (the CU's fields, the library's
-- own, common tags): Transfer skips testing them, which changes nothing but the
-- time. (Filled here, at the end, so that the lines of the errors above stay
-- where they were before it existed.)
for _, k in ipairs({
  "Id", "Signature", "Data", "Owner", "Anchor", "From", "Forwarded-By", "Tags", "TagArray", "Target", "Epoch",
  "Nonce", "Timestamp", "Block-Height", "Hash-Chain", "Cron", "Read-Only", "Module", "Action", "Recipient",
  "Quantity", "Reference", "reply", "forward", "Content-Type", "Pushed-For", "From-Process", "From-Module", "Cast",
}) do
  NOT_X[k] = true
end
