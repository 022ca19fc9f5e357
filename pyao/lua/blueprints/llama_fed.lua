-- llama_fed blueprint: a token whose monetary policy is run by an LLM (Llama Fed, spec ai-on-ao §4).
--
-- Two roles, each a process of its own; every step is a message between processes:
--
--   citizen --Transfer(X-Petition)--> payment token --Credit-Notice--> Fed
--   Fed --Petition--> King          (the King grades 0-5 with llm@1.0, a JSON-schema-constrained answer)
--   King --Grade--> Fed             (Grade, King-Answer = the model's raw JSON, Data = the reasoning)
--   Fed --Petition-Granted--> citizen   (Grade, Quantity minted, King-Answer, Data = the reasoning)
--
-- Fed: `local fed = require("blueprints.llama_fed"); fed.fed({ payment_token = <id>, king = <id>,
-- fee = "<units>" })`. The Fed is itself the minted token (it loads blueprints.token: Balances,
-- TotalSupply, Transfer, Balance...). At most one petition per wallet per day, the day being
-- floor(Timestamp / 86400000) of the Credit-Notice; a second one that day, one without X-Petition,
-- one over 250 bytes or one paying less than the fee is refunded (a Transfer back, X-Reason).
-- Payout by grade (whole tokens): 0 -> 0, 1 -> 1, 2 -> 5, 3 -> 10, 4 -> 20, 5 -> 100.
--
-- King: `require("blueprints.llama_fed").king({ fed = <id>, model = "/data/<id>" })`. Only
-- petitions from the Fed are graded. The answer is constrained by the JSON schema GradeSchema;
-- an answer that still does not parse (the token budget ran out) grades 0.
--
-- State (Fed): Petitions (id -> {sender, petition, day, grade, minted, reason}), LastPetitionDay.

local json = require("json")
local decimal = require("decimal")

local M = {}

local DAY_MS = 86400000
local MAX_PETITION = 250
local PAYOUT = { [0] = "0", "1", "5", "10", "20", "100" }

M.GradeSchema = {
  type = "object",
  properties = {
    grade = { type = "integer", enum = { 0, 1, 2, 3, 4, 5 } },
    reason = { type = "string", maxLength = 120 },
  },
  required = { "grade", "reason" },
}

M.SystemPrompt = "You are the Llama King. A citizen petitions the Llama Fed for newly minted LLAMA. "
  .. "Grade the petition from 0 (worthless) to 5 (excellent) and give a short reason. "
  .. "Answer only with JSON: {\"grade\": <0-5>, \"reason\": \"...\"}.\nPetition: "

local function whole(amount)
  return amount .. string.rep("0", math.tointeger(tonumber(Denomination)))
end

local function refund(msg, reason)
  Send({ Target = msg.From, Action = "Transfer", Recipient = msg.Sender, Quantity = msg.Quantity,
    ["X-Reason"] = reason })
  Send({ Target = msg.Sender, Action = "Petition-Refused", Reason = reason })
end

function M.fed(config)
  assert(type(config) == "table" and config.payment_token and config.king, "fed{payment_token=, king=}")
  Name = config.name or "Llama Fed Coin"
  Ticker = config.ticker or "LLAMA"
  require("blueprints.token")
  FedConfig = { payment_token = config.payment_token, king = config.king, fee = tostring(config.fee or "1") }
  Petitions = Petitions or {}
  LastPetitionDay = LastPetitionDay or {}

  Handlers.add("fed-petition", function(msg)
    return msg.Action == "Credit-Notice" and msg.From == FedConfig.payment_token
  end, function(msg)
    local petition = msg["X-Petition"]
    local day = math.tointeger(tonumber(msg.Timestamp) // DAY_MS)
    if type(petition) ~= "string" or petition == "" then
      return refund(msg, "a petition needs an X-Petition tag")
    elseif #petition > MAX_PETITION then
      return refund(msg, "a petition is at most " .. MAX_PETITION .. " bytes")
    elseif decimal.lt(msg.Quantity, FedConfig.fee) then
      return refund(msg, "the fee is " .. FedConfig.fee)
    elseif LastPetitionDay[msg.Sender] == day then
      return refund(msg, "one petition per wallet per day")
    end
    LastPetitionDay[msg.Sender] = day
    Petitions[msg.Id] = { sender = msg.Sender, petition = petition, day = day, status = "pending" }
    Send({ Target = FedConfig.king, Action = "Petition", ["Petition-Id"] = msg.Id,
      ["Original-Sender"] = msg.Sender, Data = petition })
  end)

  Handlers.add("fed-grade", function(msg)
    return msg.Action == "Grade" and msg.From == FedConfig.king
  end, function(msg)
    local p = Petitions[msg["Petition-Id"]]
    assert(p and p.status == "pending", "no pending petition " .. tostring(msg["Petition-Id"]))
    local grade = math.tointeger(tonumber(msg.Grade))
    assert(grade and grade >= 0 and grade <= 5, "grade must be 0-5")
    local amount = whole(PAYOUT[grade])
    Balances[p.sender] = decimal.add(Balances[p.sender] or "0", amount)
    TotalSupply = decimal.add(TotalSupply, amount)
    p.status, p.grade, p.minted, p.reason = "graded", grade, amount, msg.Data
    Send({ Target = p.sender, Action = "Petition-Granted", Grade = tostring(grade), Quantity = amount,
      ["Petition-Id"] = msg["Petition-Id"], ["King-Answer"] = msg["King-Answer"], Data = msg.Data })
  end)
end

--- The King's verdict on a petition: grade (0-5), reason, the raw answer.
function M.judge(Llama, model, petition)
  Llama.load(model)
  local answer = Llama.generate(M.SystemPrompt .. petition .. "\nAnswer: ",
    { json_schema = M.GradeSchema, max_tokens = 200 })
  local ok, verdict = pcall(json.decode, answer)
  if not ok or type(verdict) ~= "table" then
    return 0, "the King's answer did not parse", answer
  end
  local grade = math.tointeger(verdict.grade)
  if not grade or grade < 0 or grade > 5 then
    return 0, "the King's grade was out of range", answer
  end
  return grade, tostring(verdict.reason), answer
end

function M.king(config)
  assert(type(config) == "table" and config.fed and config.model, "king{fed=, model=}")
  KingConfig = { fed = config.fed, model = config.model }
  local Llama = require("llama")
  Handlers.add("king-petition", function(msg)
    return msg.Action == "Petition" and msg.From == KingConfig.fed
  end, function(msg)
    local grade, reason, answer = M.judge(Llama, KingConfig.model, msg.Data)
    print("The King grades petition " .. tostring(msg["Petition-Id"]) .. ": " .. grade)
    Send({ Target = msg.From, Action = "Grade", Grade = tostring(grade), ["Petition-Id"] = msg["Petition-Id"],
      ["Original-Sender"] = msg["Original-Sender"], ["King-Answer"] = answer, Data = reason })
  end)
end

return M
