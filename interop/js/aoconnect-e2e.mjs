#!/usr/bin/env node
// End-to-end scenarios: the official @permaweb/aoconnect (0.0.98, MODE 'legacy')
// drives a running pyao network (`pyao up`). Used by tests/interop/test_aoconnect_e2e.py:
//
//   node interop/js/aoconnect-e2e.mjs <scenario> <config.json | ->
//
// config: {"gateway": url, "graphql": url, "mu": url, "cu": url, "su": url,
//          "wallet": "<path to a JWK file>", "module": "<module id>",
//          "scheduler": "<SU address>", "mu_address": "<MU address>",
//          "timeout_ms": 20000}
//
// stdout: one JSON object
//   {"scenario", "ok", "error", "observed": {...},
//    "requests": [{"method", "url", "status", "body"?}], "blocked": [url, ...],
//    "retried": [{"what", "error"}, ...]}
// "observed" holds what the scenario saw; the Python test asserts on it field by field.
// Every request aoconnect makes goes through a fetch wrapper that records it and
// refuses any host but 127.0.0.1 / localhost (such a request lands in "blocked").
// "body" is kept for answers that are not 2xx, so wire mismatches show up in the test.
// "retried" lists the CU reads that met a process the gateway did not index yet (see cuRead).
// Scenarios: spawn-message-result, results-dryrun, cron-monitor, assign, token,
// spawn-from-process, result-right-after-spawn, assign-right-after-message.
//
// Exit status: 0 when the JSON was written (even if the scenario failed: see "ok"),
// 2 on a usage error.

import { readFileSync } from "node:fs";

// Keep stdout for the JSON result alone.
for (const level of ["log", "info", "warn", "debug", "error"]) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
}

const LOCAL_HOSTS = new Set(["127.0.0.1", "localhost", "[::1]"]);
const requests = [];
const blocked = [];
const realFetch = globalThis.fetch;

async function recordingFetch(input, init = {}) {
  const url = typeof input === "string" ? input : input.url ?? String(input);
  const method = (init.method || (typeof input === "object" && input.method) || "GET").toUpperCase();
  const host = new URL(url).hostname;
  if (!LOCAL_HOSTS.has(host)) {
    blocked.push(url);
    throw new Error(`aoconnect-e2e: refusing a request off this machine: ${method} ${url}`);
  }
  const entry = { method, url, status: null };
  requests.push(entry);
  const res = await realFetch(input, init);
  entry.status = res.status;
  if (!res.ok) entry.body = await res.clone().text();
  return res;
}
// aoconnect captures the global fetch when it is imported: patch it first, and also pass it.
globalThis.fetch = recordingFetch;
const { connect, createDataItemSigner } = await import("@permaweb/aoconnect");

const [scenarioName, configPath] = process.argv.slice(2);
if (!scenarioName || !configPath) {
  process.stderr.write("usage: aoconnect-e2e.mjs <scenario> <config.json | ->\n");
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath === "-" ? 0 : configPath, "utf8"));
const TIMEOUT_MS = config.timeout_ms ?? 20000;
const jwk = JSON.parse(readFileSync(config.wallet, "utf8"));
const signer = createDataItemSigner(jwk);
const ao = connect({
  MODE: "legacy",
  GATEWAY_URL: config.gateway,
  GRAPHQL_URL: config.graphql,
  MU_URL: config.mu,
  CU_URL: config.cu,
  fetch: recordingFetch,
  noLog: true,
});

// ------------------------------------------------------------------ helpers

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ID = /^[A-Za-z0-9_-]{43}$/;
const tag = (tags, name) => (tags || []).find((t) => t.name === name)?.value;

/** Call `probe` until `done(value)` holds or the time runs out; returns the last value. */
async function waitFor(probe, done, { timeoutMs = TIMEOUT_MS, everyMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let value;
  for (;;) {
    value = await probe();
    if (done(value) || Date.now() >= deadline) return value;
    await sleep(everyMs);
  }
}

/** Spawn a process of our module that trusts our MU. */
async function spawnProcess(name, extraTags = [], data = "aos") {
  return ao.spawn({
    module: config.module,
    scheduler: config.scheduler,
    signer,
    tags: [{ name: "Name", value: name }, { name: "Authority", value: config.mu_address }, ...extraTags],
    data,
  });
}

// A CU read right after a spawn can meet a process the gateway does not index yet: the CU
// answers 404 {"error": "process ... was not found on the gateway"} and aoconnect, which does not
// look at the status of CU answers, hands that object back as the result. The scenarios wait
// that race out (each retry is listed in "retried"); the scenario "result-right-after-spawn"
// shows it on purpose.
const retried = [];
const MISSING = /was not found on the gateway/;
async function cuRead(what, call) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const answer = await call();
    if (!(answer && typeof answer.error === "string" && MISSING.test(answer.error)) || Date.now() > deadline) {
      return answer;
    }
    retried.push({ what, error: answer.error });
    await sleep(100);
  }
}
const resultOf = (message, processId) =>
  cuRead(`result ${message}`, () => ao.result({ message, process: processId }));
const resultsOf = (args) => cuRead(`results ${args.process}`, () => ao.results(args));
const dryrunOf = (args) => cuRead(`dryrun ${args.process}`, () => ao.dryrun(args));

// The same race at the SU: it refuses to assign a message it scheduled a moment ago until the
// gateway indexes it (400 "Invalid gateway tx for assigning: <id> is not on the gateway", which
// aoconnect throws). Scenario "assign-right-after-message" shows it on purpose.
const NOT_ON_GATEWAY = /is not on the gateway/;
async function assignOf(args) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    try {
      return await ao.assign(args);
    } catch (e) {
      if (!NOT_ON_GATEWAY.test(String(e?.message)) || Date.now() > deadline) throw e;
      retried.push({ what: `assign ${args.message}`, error: String(e.message) });
      await sleep(100);
    }
  }
}

/** Keep the SU busy (messages to a process of its own) while `work` runs; returns work's value. */
async function underLoad(work, senders = 3) {
  const busy = await spawnProcess("e2e-busy");
  await evaluate(busy, "return 1");
  let stop = false;
  const traffic = Array.from({ length: senders }, async () => {
    while (!stop) await send(busy, [{ name: "Action", value: "Noise" }], "noise");
  });
  try {
    return await work();
  } finally {
    stop = true;
    await Promise.all(traffic);
  }
}

/** Send an Eval, return {id, result}. */
async function evaluate(processId, code) {
  const id = await ao.message({ process: processId, signer, tags: [{ name: "Action", value: "Eval" }], data: code });
  const result = await resultOf(id, processId);
  return { id, result };
}

async function send(processId, tags, data) {
  return ao.message({ process: processId, signer, tags, data });
}

/** A dry-run of Action=<action> as the process owner; the first outbox message's Data, or the Output. */
async function ask(processId, action, tags = []) {
  const answer = await dryrunOf({
    process: processId,
    Owner: config.owner,
    tags: [{ name: "Action", value: action }, ...tags],
  });
  return answer;
}

const outputData = (result) => (typeof result?.Output === "object" ? result?.Output?.data : result?.Output);
const firstData = (answer) => answer?.Messages?.[0]?.Data;
const cursorBody = (cursor) => JSON.parse(Buffer.from(cursor, "base64").toString("utf8"));

// Token handlers written inline (a minimal aos token).
// TODO: switch to pyao/lua/blueprints/token.lua (being written) once it lands.
const TOKEN_LUA = `
Balances = Balances or { [ao.id] = "1000" }
Ticker = Ticker or "PYT"
local function add(a, b) return tostring(math.tointeger(tonumber(a or "0") + tonumber(b or "0"))) end
Handlers.add("Balances", "Balances", function(m) m.reply({ Data = require("json").encode(Balances) }) end)
Handlers.add("Balance", "Balance", function(m)
  local who = m.Tags.Recipient or m.Tags.Target or m.From
  m.reply({ Action = "Balance", Balance = Balances[who] or "0", Account = who, Ticker = Ticker, Data = Balances[who] or "0" })
end)
Handlers.add("Transfer", "Transfer", function(m)
  local qty = tonumber(m.Quantity)
  assert(type(m.Recipient) == "string", "Recipient is required")
  assert(qty and qty > 0, "Quantity must be positive")
  if tonumber(Balances[m.From] or "0") < qty then
    m.reply({ Action = "Transfer-Error", ["Message-Id"] = m.Id, Error = "Insufficient Balance!" })
    return
  end
  Balances[m.From] = add(Balances[m.From], -qty)
  Balances[m.Recipient] = add(Balances[m.Recipient], qty)
  Send({ Target = m.From, Action = "Debit-Notice", Recipient = m.Recipient, Quantity = m.Quantity })
  Send({ Target = m.Recipient, Action = "Credit-Notice", Sender = m.From, Quantity = m.Quantity })
end)
return "token ready"
`;

// ------------------------------------------------------------------ scenarios

const scenarios = {
  // 1. spawn (GraphQL module lookup + MU), message an Eval adding a handler, read results.
  async "spawn-message-result"(seen) {
    const pid = await spawnProcess("e2e-basic");
    seen.process = pid;
    const added = await evaluate(
      pid,
      `Handlers.add("ping", "Ping", function(m) m.reply({ Action = "Pong", Data = "pong:" .. (m.Data or "") }) end)
       return "handler added"`,
    );
    seen.eval_id = added.id;
    seen.eval_output = outputData(added.result);
    seen.eval_error = added.result?.Error ?? null;
    seen.eval_prompt = typeof added.result?.Output === "object" ? added.result.Output.prompt ?? null : null;
    const pingId = await send(pid, [{ name: "Action", value: "Ping" }], "hello");
    const ping = await resultOf(pingId, pid);
    seen.ping_error = ping?.Error ?? null;
    seen.ping_messages = (ping?.Messages || []).map((m) => ({
      Target: m.Target,
      Data: m.Data,
      Action: tag(m.Tags, "Action"),
      XReference: tag(m.Tags, "X-Reference"),
    }));
    const sum = await evaluate(pid, "return 6 * 7");
    seen.sum_output = outputData(sum.result);
  },

  // 2. results paginated both ways, and a read-only dryrun.
  async "results-dryrun"(seen) {
    const pid = await spawnProcess("e2e-results");
    seen.process = pid;
    await evaluate(
      pid,
      `Counter = 0
       Handlers.add("inc", "Inc", function(m) Counter = Counter + 1; print("counter " .. Counter) end)
       Handlers.add("get", "Get", function(m) m.reply({ Action = "Got", Data = tostring(Counter) }) end)
       return "ok"`,
    );
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await send(pid, [{ name: "Action", value: "Inc" }], `inc ${i}`));
    seen.inc_ids = ids;
    // Waiting on the last one makes the CU evaluate all of them.
    seen.last_inc = outputData(await resultOf(ids.at(-1), pid));

    const all = await resultsOf({ process: pid, sort: "ASC", limit: 100 });
    seen.all_count = all.edges.length;
    seen.all_keys = Object.keys(all);
    seen.all_outputs = all.edges.map((e) => outputData(e.node));
    seen.all_cursors_decoded = all.edges.map((e) => cursorBody(e.cursor));

    const walk = async (sort) => {
      const pages = [];
      let from;
      for (let guard = 0; guard < 20; guard++) {
        const page = await resultsOf({ process: pid, sort, limit: 2, ...(from ? { from } : {}) });
        pages.push(page.edges.map((e) => outputData(e.node)));
        // aoconnect's zod schema keeps only `edges` (it drops pageInfo): a short page is the last.
        if (page.edges.length < 2) break;
        from = page.edges.at(-1).cursor;
      }
      return pages;
    };
    seen.asc_pages = await walk("ASC");
    seen.desc_pages = await walk("DESC");

    // A window: strictly after the 2nd result up to (and including) the 4th.
    const cursors = all.edges.map((e) => e.cursor);
    const window = await resultsOf({ process: pid, sort: "ASC", from: cursors[1], to: cursors[3] });
    seen.window_outputs = window.edges.map((e) => outputData(e.node));
    const last2 = await resultsOf({ process: pid, sort: "DESC", limit: 2 });
    seen.desc_limit2 = last2.edges.map((e) => outputData(e.node));

    const got = await ask(pid, "Get");
    seen.dryrun_get = firstData(got);
    seen.dryrun_get_action = tag(got?.Messages?.[0]?.Tags, "Action");
    seen.dryrun_get_error = got?.Error ?? null;
    // aoconnect's own defaults (Id and Owner "1234", Data "1234", Anchor "0"), as most callers use it.
    const plain = await dryrunOf({ process: pid, tags: [{ name: "Action", value: "Get" }] });
    seen.dryrun_plain = firstData(plain);
    seen.dryrun_plain_target = plain?.Messages?.[0]?.Target;
    // A dry-run that changes state must not stick.
    const bump = await dryrunOf({ process: pid, Owner: config.owner, tags: [{ name: "Action", value: "Inc" }] });
    seen.dryrun_inc_output = outputData(bump);
    seen.dryrun_after = firstData(await ask(pid, "Get"));
    const count = await evaluate(pid, "return Counter");
    seen.counter_after = outputData(count.result);
    const after = await resultsOf({ process: pid, sort: "ASC", limit: 100 });
    seen.count_after_dryruns = after.edges.length;
  },

  // 3. monitor a cron process whose cron handler Sends to another process.
  async "cron-monitor"(seen) {
    const sink = await spawnProcess("e2e-sink");
    seen.sink = sink;
    await evaluate(
      sink,
      `Ticks = {}
       Handlers.add("tick", "Tick", function(m) table.insert(Ticks, m.From) end)
       Handlers.add("ticks", "Ticks", function(m) m.reply({ Data = require("json").encode(Ticks) }) end)
       return "sink ready"`,
    );
    const cron = await spawnProcess("e2e-cron", [
      { name: "Cron-Interval", value: "1-second" },
      { name: "Cron-Tag-Action", value: "Cron" },
    ]);
    seen.cron = cron;
    const ready = await evaluate(
      cron,
      `Fired = 0
       Handlers.add("cron", "Cron", function(m)
         Fired = Fired + 1
         print("cron tick " .. Fired)
         Send({ Target = "${sink}", Action = "Tick", Data = tostring(Fired) })
       end)
       return "cron ready"`,
    );
    seen.cron_eval = outputData(ready.result);
    seen.monitor_id = await ao.monitor({ process: cron, signer });
    const ticks = await waitFor(
      async () => JSON.parse(firstData(await ask(sink, "Ticks")) || "[]"),
      (list) => list.length >= 2,
    );
    seen.sink_ticks = ticks;
    const cronResults = await resultsOf({ process: cron, sort: "ASC", limit: 100 });
    seen.cron_results_outputs = cronResults.edges.map((e) => outputData(e.node));
    seen.cron_results_targets = cronResults.edges.flatMap((e) => (e.node.Messages || []).map((m) => m.Target));
    seen.cron_cursor_has_cron = cronResults.edges.some((e) => cursorBody(e.cursor).cron != null);
    seen.unmonitor_id = await ao.unmonitor({ process: cron, signer });
  },

  // 4. assign a message already scheduled on one process to another.
  async assign(seen) {
    const first = await spawnProcess("e2e-assign-a");
    const second = await spawnProcess("e2e-assign-b");
    seen.first = first;
    seen.second = second;
    const code = `Notes = {}
      Handlers.add("note", "Note", function(m) table.insert(Notes, m.Id .. ":" .. m.Data); print("noted " .. m.Id) end)
      Handlers.add("notes", "Notes", function(m) m.reply({ Data = require("json").encode(Notes) }) end)
      return "notes ready"`;
    await evaluate(first, code);
    await evaluate(second, code);
    const note = await send(first, [{ name: "Action", value: "Note" }], "remember me");
    seen.message = note;
    seen.first_result = outputData(await resultOf(note, first));
    seen.assignment_id = await assignOf({ process: second, message: note });
    const onSecond = await waitFor(
      async () => JSON.parse(firstData(await ask(second, "Notes")) || "[]"),
      (list) => list.length >= 1,
    );
    seen.second_notes = onSecond;
    seen.first_notes = JSON.parse(firstData(await ask(first, "Notes")) || "[]");
    const assigned = await resultOf(note, second);
    seen.second_result = outputData(assigned);
    seen.second_result_error = assigned?.Error ?? null;
  },

  // 5. two token processes. Each holds its own ledger (1000 to itself). alpha pays beta 250 on
  // alpha's ledger; beta, on the Credit-Notice, pays 100 of it back. Each transfer's token sends a
  // Debit-Notice to the payer and a Credit-Notice to the payee, so each process gets both notices.
  async token(seen) {
    const alpha = await spawnProcess("e2e-token-alpha");
    const beta = await spawnProcess("e2e-token-beta");
    seen.alpha = alpha;
    seen.beta = beta;
    const notices = (refund) => `Notices = {}
       Handlers.add("credit", "Credit-Notice", function(m)
         table.insert(Notices, "credit:" .. m.From .. ":" .. m.Sender .. ":" .. m.Quantity)
         print("credit " .. m.Quantity .. " from " .. m.Sender)
         ${refund}
       end)
       Handlers.add("debit", "Debit-Notice", function(m)
         table.insert(Notices, "debit:" .. m.From .. ":" .. m.Recipient .. ":" .. m.Quantity)
         print("debit " .. m.Quantity .. " to " .. m.Recipient)
       end)
       Handlers.add("notices", "Notices", function(m) m.reply({ Data = require("json").encode(Notices) }) end)
       return "notices ready"`;
    for (const [pid, refund] of [
      [alpha, ""],
      [beta, `if m.From == "${alpha}" and m.Quantity == "250" then Send({ Target = m.From, Action = "Transfer", Recipient = m.From, Quantity = "100" }) end`],
    ]) {
      const name = pid === alpha ? "alpha" : "beta";
      seen[`${name}_load`] = outputData((await evaluate(pid, TOKEN_LUA)).result);
      seen[`${name}_notices_load`] = outputData((await evaluate(pid, notices(refund))).result);
    }
    const kick = await evaluate(
      alpha,
      `Send({ Target = ao.id, Action = "Transfer", Recipient = "${beta}", Quantity = "250" }); return "sent"`,
    );
    seen.kick_output = outputData(kick.result);
    seen.kick_messages = (kick.result?.Messages || []).map((m) => [m.Target, tag(m.Tags, "Action")]);
    const noticesOf = async (pid) => JSON.parse(firstData(await ask(pid, "Notices")) || "[]");
    seen.alpha_notices = await waitFor(() => noticesOf(alpha), (list) => list.length >= 2);
    seen.beta_notices = await waitFor(() => noticesOf(beta), (list) => list.length >= 2);
    seen.alpha_balances = JSON.parse(firstData(await ask(alpha, "Balances")) || "{}");
    seen.beta_balances = JSON.parse(firstData(await ask(beta, "Balances")) || "{}");
    const balance = await ask(alpha, "Balance", [{ name: "Recipient", value: beta }]);
    seen.beta_balance_on_alpha = tag(balance?.Messages?.[0]?.Tags, "Balance");
    seen.beta_balance_data = firstData(balance);

    const history = async (pid) => {
      const page = await resultsOf({ process: pid, sort: "ASC", limit: 100 });
      return {
        sent: page.edges.flatMap((e) => (e.node.Messages || []).map((m) => [m.Target, tag(m.Tags, "Action")])),
        printed: page.edges.map((e) => outputData(e.node)).filter(Boolean),
      };
    };
    seen.alpha_history = await history(alpha);
    seen.beta_history = await history(beta);
  },

  // 6. a process Spawns another and handles Spawned.
  async "spawn-from-process"(seen) {
    const parent = await spawnProcess("e2e-parent");
    seen.parent = parent;
    const kick = await evaluate(
      parent,
      `Children = {}
       Handlers.add("spawned", "Spawned", function(m) table.insert(Children, m.Process); print("spawned " .. m.Process) end)
       Handlers.add("children", "Children", function(m) m.reply({ Data = require("json").encode(Children) }) end)
       Spawn(ao._module, { Data = "child data", Name = "e2e-child", Authority = "${config.mu_address}" })
       return "spawning"`,
    );
    seen.kick_output = outputData(kick.result);
    seen.kick_spawns = (kick.result?.Spawns || []).length;
    const children = await waitFor(
      async () => JSON.parse(firstData(await ask(parent, "Children")) || "[]"),
      (list) => list.length >= 1,
    );
    seen.children = children;
    if (children.length) {
      const child = children[0];
      const page = await waitFor(
        () => resultsOf({ process: child, sort: "ASC", limit: 10 }),
        (p) => (p.edges || []).length >= 1,
      );
      seen.child_results = (page.edges || []).length;
      // The child's Owner is the parent (From-Process): ask it for its state read-only.
      const probe = await dryrunOf({
        process: child,
        Owner: parent,
        tags: [{ name: "Action", value: "Eval" }],
        data: "return Owner .. '|' .. Name",
      });
      seen.child_owner_name = outputData(probe);
    }
  },
  // The races behind the retries above, on purpose, while the SU is busy (steady traffic to
  // another process): up to 40 rounds, stopping at the first one that meets the race.
  // Each round's raw aoconnect answer is kept.
  async "result-right-after-spawn"(seen) {
    seen.rounds = [];
    await underLoad(async () => {
      for (let i = 0; i < 40; i++) {
        const pid = await spawnProcess(`e2e-race-${i}`);
        const id = await ao.message({ process: pid, signer, tags: [{ name: "Action", value: "Eval" }], data: "return 6 * 7" });
        const answer = await ao.result({ message: id, process: pid });
        seen.rounds.push({ output: outputData(answer) ?? null, error: answer?.error ?? null });
        if (answer?.error) break;
      }
    });
  },

  async "assign-right-after-message"(seen) {
    const from = await spawnProcess("e2e-assign-from");
    const to = await spawnProcess("e2e-assign-to");
    await evaluate(from, "return 1");
    await evaluate(to, "return 1");
    seen.rounds = [];
    await underLoad(async () => {
      for (let i = 0; i < 40; i++) {
        const id = await send(from, [{ name: "Action", value: "Note" }], `note ${i}`);
        try {
          const assignment = await ao.assign({ process: to, message: id });
          seen.rounds.push({ assigned: ID.test(assignment), error: null });
        } catch (e) {
          seen.rounds.push({ assigned: false, error: String(e?.message) });
          break;
        }
      }
    });
  },
};

// ------------------------------------------------------------------ main

const out = { scenario: scenarioName, ok: false, error: null, observed: {}, requests, blocked, retried };
try {
  const run = scenarios[scenarioName];
  if (!run) throw new Error(`unknown scenario ${scenarioName}; known: ${Object.keys(scenarios).join(", ")}`);
  const owner = config.owner;
  if (!owner) throw new Error("config.owner (the wallet address) is required");
  await run(out.observed);
  out.ok = true;
} catch (e) {
  out.error = e && e.stack ? e.stack : String(e);
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
