-- chatroom blueprint: a room that members join, post to and leave.
--
-- pyao's own blueprint (docs/lua-modules.md, "The chat-room blueprint"). Load it
-- with `require("blueprints.chatroom")` (or `require(".chatroom")`) in a module,
-- or Eval its text. Loading it again keeps the state: every global below is
-- only set when it is still nil.
--
-- State: Members (addresses, in the order they joined) and Nicknames
-- (address -> nickname, for those who gave one).
--
-- Actions (answers go through msg.reply: Target = Reply-To or From, X-Reference):
--   Register    -> joins the sender (a Nickname tag sets or changes its nickname);
--                  reply Action = Registered
--   Unregister  -> the sender leaves; reply Action = Unregistered, or
--                  Unregister-Error if it was not a member
--   Broadcast   -> one message to every member, the sender included, in join
--                  order: Action = Broadcasted, Broadcaster = the sender,
--                  Nickname (if it has one), Data = the post; a non-member gets
--                  Broadcast-Error instead and nothing is sent
--   Members     -> reply Action = Members, Data = JSON array of the members

local json = require("json")

Members = Members or {}
Nicknames = Nicknames or {}

local function index_of(address)
  for i, m in ipairs(Members) do
    if m == address then
      return i
    end
  end
  return nil
end

local function action(name)
  return Handlers.utils.hasMatchingTag("Action", name)
end

Handlers.add("chatroom.register", action("Register"), function(msg)
  if not index_of(msg.From) then
    table.insert(Members, msg.From)
  end
  if msg.Nickname ~= nil then
    Nicknames[msg.From] = msg.Nickname
  end
  msg.reply({ Action = "Registered", Members = tostring(#Members), Data = "Registered." })
end)

Handlers.add("chatroom.unregister", action("Unregister"), function(msg)
  local i = index_of(msg.From)
  if not i then
    msg.reply({ Action = "Unregister-Error", Error = "Not a member" })
    return
  end
  table.remove(Members, i)
  Nicknames[msg.From] = nil
  msg.reply({ Action = "Unregistered", Members = tostring(#Members), Data = "Unregistered." })
end)

Handlers.add("chatroom.broadcast", action("Broadcast"), function(msg)
  if not index_of(msg.From) then
    msg.reply({ Action = "Broadcast-Error", Error = "Register first" })
    return
  end
  local data = msg.Data
  if type(data) == "table" then
    data = json.encode(data)
  end
  for _, member in ipairs(Members) do
    Send({
      Target = member,
      Action = "Broadcasted",
      Broadcaster = msg.From,
      Nickname = Nicknames[msg.From],
      Data = tostring(data or ""),
    })
  end
  print("Broadcast to " .. #Members .. " members")
end)

Handlers.add("chatroom.members", action("Members"), function(msg)
  msg.reply({ Action = "Members", Data = json.encode(Members) })
end)
