#!/usr/bin/env node
// The six end-to-end scenarios of aoconnect-e2e.mjs, on a WASM process: the official
// @permaweb/aoconnect (0.0.98, MODE 'legacy') drives `pyao up`, whose processes run the kit's
// `actor` module (kit/wasm/actor.c). The module has no Eval, so each scenario sends actions the
// module understands where the Lua scenarios send Eval. Used by tests/interop/test_aoconnect_wasm.py:
//
//   node interop/js/aoconnect-wasm-e2e.mjs <scenario> <config.json | ->
//
// config: {"gateway", "graphql", "mu", "cu" (urls), "wallet" (a JWK file), "owner" (its address),
//          "module" (the actor module's id), "scheduler", "mu_address", "timeout_ms"?}
// stdout: one JSON object {scenario, ok, error, observed, requests, blocked, retried}, as
// aoconnect-e2e.mjs prints it: every request aoconnect made (method, url, status, and the body of
// an answer that was not 2xx), every request refused because it left this machine, and every CU
// read retried because the gateway had not indexed a new process yet.
// Scenarios: spawn-message-result, results-dryrun, cron-monitor, assign, token, spawn-from-process.
// Exit status: 0 when the JSON was written (see "ok"), 2 on a usage error.
import { readFileSync } from "node:fs";

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
  if (!LOCAL_HOSTS.has(new URL(url).hostname)) {
    blocked.push(url);
    throw new Error(`aoconnect-wasm-e2e: refusing a request off this machine: ${method} ${url}`);
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
  process.stderr.write("usage: aoconnect-wasm-e2e.mjs <scenario> <config.json | ->\n");
  process.exit(2);
}
const config = JSON.parse(readFileSync(configPath === "-" ? 0 : configPath, "utf8"));
const TIMEOUT_MS = config.timeout_ms ?? 20000;
const signer = createDataItemSigner(JSON.parse(readFileSync(config.wallet, "utf8")));
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
const tag = (tags, name) => (tags || []).find((t) => t.name === name)?.value;
const outputData = (result) => (typeof result?.Output === "object" ? result?.Output?.data : result?.Output);
const firstData = (answer) => answer?.Messages?.[0]?.Data;
const cursorBody = (cursor) => JSON.parse(Buffer.from(cursor, "base64").toString("utf8"));
const json = (text, empty) => JSON.parse(text || empty);

/** Call `probe` until `done(value)` holds or the time runs out; returns the last value. */
async function waitFor(probe, done, { timeoutMs = TIMEOUT_MS, everyMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (done(value) || Date.now() >= deadline) return value;
    await sleep(everyMs);
  }
}

/** Spawn a process of the actor module (extra tags configure it: Token-Supply, Cron-Interval...). */
async function spawnProcess(name, extraTags = []) {
  return ao.spawn({
    module: config.module,
    scheduler: config.scheduler,
    signer,
    tags: [{ name: "Name", value: name }, { name: "Authority", value: config.mu_address }, ...extraTags],
    data: "actor",
  });
}

// A CU read right after a spawn can meet a process the gateway has not indexed yet (a 404 that
// aoconnect hands back as the result): wait that race out, listing each retry in "retried".
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

// The same race at the SU for an assignment of a message it scheduled a moment ago.
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

const send = (processId, action, tags = [], data = "") =>
  ao.message({ process: processId, signer, tags: [{ name: "Action", value: action }, ...tags], data });

/** Send an action and read its result: {id, result}. */
async function act(processId, action, tags = [], data = "") {
  const id = await send(processId, action, tags, data);
  return { id, result: await resultOf(id, processId) };
}

/** A dry-run of an action as the wallet (the module answers lists and balances with a reply). */
const ask = (processId, action, tags = []) =>
  dryrunOf({ process: processId, Owner: config.owner, tags: [{ name: "Action", value: action }, ...tags] });
const listOf = async (processId, action) => json(firstData(await ask(processId, action)), "[]");

// ------------------------------------------------------------------ scenarios

const scenarios = {
  // 1. spawn (GraphQL module lookup + MU), then three actions, each with its result.
  async "spawn-message-result"(seen) {
    const pid = await spawnProcess("wasm-basic");
    seen.process = pid;
    const info = await act(pid, "Info");
    seen.info_id = info.id;
    seen.info_output = outputData(info.result);
    seen.info_error = info.result?.Error ?? null;
    const ping = (await act(pid, "Ping", [], "hello")).result;
    seen.ping_error = ping?.Error ?? null;
    seen.ping_messages = (ping?.Messages || []).map((m) => ({ Target: m.Target, Data: m.Data, Action: tag(m.Tags, "Action") }));
    seen.ping_anchor = ping?.Messages?.[0]?.Anchor ?? null;
    const product = await act(pid, "Multiply", [{ name: "X", value: "6" }, { name: "Y", value: "7" }]);
    seen.multiply_output = outputData(product.result);
  },

  // 2. results paginated both ways, and read-only dry-runs.
  async "results-dryrun"(seen) {
    const pid = await spawnProcess("wasm-results");
    seen.process = pid;
    seen.info = outputData((await act(pid, "Info")).result);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await send(pid, "Inc", [], `inc ${i}`));
    seen.last_inc = outputData(await resultOf(ids.at(-1), pid)); // evaluates all of them

    const all = await resultsOf({ process: pid, sort: "ASC", limit: 100 });
    seen.all_count = all.edges.length;
    seen.all_outputs = all.edges.map((e) => outputData(e.node));
    seen.all_cursors_decoded = all.edges.map((e) => cursorBody(e.cursor));

    const walk = async (sort) => {
      const pages = [];
      let from;
      for (let guard = 0; guard < 20; guard++) {
        const page = await resultsOf({ process: pid, sort, limit: 2, ...(from ? { from } : {}) });
        pages.push(page.edges.map((e) => outputData(e.node)));
        if (page.edges.length < 2) break; // aoconnect keeps only `edges`: a short page is the last
        from = page.edges.at(-1).cursor;
      }
      return pages;
    };
    seen.asc_pages = await walk("ASC");
    seen.desc_pages = await walk("DESC");
    const cursors = all.edges.map((e) => e.cursor);
    const window = await resultsOf({ process: pid, sort: "ASC", from: cursors[1], to: cursors[3] });
    seen.window_outputs = window.edges.map((e) => outputData(e.node));
    seen.desc_limit2 = (await resultsOf({ process: pid, sort: "DESC", limit: 2 })).edges.map((e) => outputData(e.node));

    const got = await ask(pid, "Get");
    seen.dryrun_get = firstData(got);
    seen.dryrun_get_action = tag(got?.Messages?.[0]?.Tags, "Action");
    seen.dryrun_get_error = got?.Error ?? null;
    // aoconnect's own defaults (Id and Owner "1234"), as most callers use it
    const plain = await dryrunOf({ process: pid, tags: [{ name: "Action", value: "Get" }] });
    seen.dryrun_plain = firstData(plain);
    seen.dryrun_plain_target = plain?.Messages?.[0]?.Target;
    const bump = await dryrunOf({ process: pid, Owner: config.owner, tags: [{ name: "Action", value: "Inc" }] });
    seen.dryrun_inc_output = outputData(bump); // the dry-run ran the action ...
    seen.dryrun_after = firstData(await ask(pid, "Get")); // ... and its state did not stick
    seen.count_after = outputData((await act(pid, "Count")).result);
    seen.count_after_dryruns = (await resultsOf({ process: pid, sort: "ASC", limit: 100 })).edges.length;
  },

  // 3. monitor a cron process whose ticks send Tick to another process.
  async "cron-monitor"(seen) {
    const sink = await spawnProcess("wasm-sink");
    seen.sink = sink;
    const cron = await spawnProcess("wasm-cron", [
      { name: "Cron-Interval", value: "1-second" },
      { name: "Cron-Tag-Action", value: "Cron" },
    ]);
    seen.cron = cron;
    seen.cron_ready = outputData((await act(cron, "Set-Sink", [{ name: "Sink", value: sink }])).result);
    seen.monitor_id = await ao.monitor({ process: cron, signer });
    seen.sink_ticks = await waitFor(() => listOf(sink, "Ticks"), (list) => list.length >= 2);
    const page = await resultsOf({ process: cron, sort: "ASC", limit: 100 });
    seen.cron_results_outputs = page.edges.map((e) => outputData(e.node));
    seen.cron_results_messages = page.edges.flatMap((e) =>
      (e.node.Messages || []).map((m) => [m.Target, tag(m.Tags, "Action"), m.Data]),
    );
    seen.cron_cursor_has_cron = page.edges.some((e) => cursorBody(e.cursor).cron != null);
    seen.unmonitor_id = await ao.unmonitor({ process: cron, signer });
  },

  // 4. assign a message already scheduled on one process to another.
  async assign(seen) {
    const first = await spawnProcess("wasm-assign-a");
    const second = await spawnProcess("wasm-assign-b");
    seen.first = first;
    seen.second = second;
    const note = await send(first, "Note", [], "remember me");
    seen.message = note;
    seen.first_result = outputData(await resultOf(note, first));
    seen.assignment_id = await assignOf({ process: second, message: note });
    seen.second_notes = await waitFor(() => listOf(second, "Notes"), (list) => list.length >= 1);
    seen.first_notes = await listOf(first, "Notes");
    const assigned = await resultOf(note, second);
    seen.second_result = outputData(assigned);
    seen.second_result_error = assigned?.Error ?? null;
  },

  // 5. two token processes, each with its own ledger (1000 to itself). alpha pays beta 250 on
  // alpha's ledger; beta (Pay-Back: 100) answers the Credit-Notice by paying 100 back. Each
  // transfer sends a Debit-Notice to the payer and a Credit-Notice to the payee.
  async token(seen) {
    const supply = { name: "Token-Supply", value: "1000" };
    const alpha = await spawnProcess("wasm-token-alpha", [supply]);
    const beta = await spawnProcess("wasm-token-beta", [supply, { name: "Pay-Back", value: "100" }]);
    seen.alpha = alpha;
    seen.beta = beta;
    const kick = (await act(alpha, "Pay", [{ name: "Recipient", value: beta }, { name: "Quantity", value: "250" }]))
      .result;
    seen.kick_output = outputData(kick);
    seen.kick_messages = (kick?.Messages || []).map((m) => [m.Target, tag(m.Tags, "Action")]);
    seen.alpha_notices = await waitFor(() => listOf(alpha, "Notices"), (list) => list.length >= 2);
    seen.beta_notices = await waitFor(() => listOf(beta, "Notices"), (list) => list.length >= 2);
    seen.alpha_balances = json(firstData(await ask(alpha, "Balances")), "{}");
    seen.beta_balances = json(firstData(await ask(beta, "Balances")), "{}");
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

    // the wallet holds nothing on alpha's ledger: a Transfer-Error back to it, and nothing moves
    const refused = (await act(alpha, "Transfer", [{ name: "Recipient", value: beta }, { name: "Quantity", value: "5" }]))
      .result;
    seen.refused = (refused?.Messages || []).map((m) => [m.Target, tag(m.Tags, "Action"), tag(m.Tags, "Error")]);
    seen.alpha_balances_after = json(firstData(await ask(alpha, "Balances")), "{}");
  },

  // 6. a process Spawns another and handles Spawned.
  async "spawn-from-process"(seen) {
    const parent = await spawnProcess("wasm-parent");
    seen.parent = parent;
    const kick = (await act(parent, "Spawn", [{ name: "Child-Name", value: "wasm-child" }], "child data")).result;
    seen.kick_output = outputData(kick);
    seen.kick_spawns = (kick?.Spawns || []).length;
    seen.children = await waitFor(() => listOf(parent, "Children"), (list) => list.length >= 1);
    const parentPage = await resultsOf({ process: parent, sort: "ASC", limit: 10 });
    seen.parent_outputs = parentPage.edges.map((e) => outputData(e.node));
    if (seen.children.length) {
      const child = seen.children[0];
      const page = await waitFor(
        () => resultsOf({ process: child, sort: "ASC", limit: 10 }),
        (p) => (p.edges || []).length >= 1,
      );
      seen.child_results = (page.edges || []).length;
      // the child's owner is its spawner (From-Process): ask it read-only, as the parent
      const probe = await dryrunOf({ process: child, Owner: parent, tags: [{ name: "Action", value: "Info" }] });
      seen.child_owner_name = outputData(probe);
    }
  },
};

// ------------------------------------------------------------------ main

const out = { scenario: scenarioName, ok: false, error: null, observed: {}, requests, blocked, retried };
try {
  const run = scenarios[scenarioName];
  if (!run) throw new Error(`unknown scenario ${scenarioName}; known: ${Object.keys(scenarios).join(", ")}`);
  if (!config.owner) throw new Error("config.owner (the wallet address) is required");
  await run(out.observed);
  out.ok = true;
} catch (e) {
  out.error = e && e.stack ? e.stack : String(e);
}
process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
