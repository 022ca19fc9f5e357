#!/usr/bin/env node
// aoconnect (0.0.98, legacy mode) spawns a process of a WASM module on a pyao network, sends it a
// message and reads the result, a dry run and the results list. Prints one JSON object.
//   node aoconnect-wasm.mjs < config.json
//   config: {gateway, graphql, mu, cu, wallet (JWK path), module, scheduler, mu_address, timeout_ms?}
// Any request off this machine is refused and listed in "blocked".
import { readFileSync } from "node:fs";

for (const level of ["log", "info", "warn", "debug", "error"]) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
}
const LOCAL = new Set(["127.0.0.1", "localhost", "[::1]"]);
const blocked = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const url = typeof input === "string" ? input : input.url ?? String(input);
  if (!LOCAL.has(new URL(url).hostname)) {
    blocked.push(url);
    throw new Error(`refusing a request off this machine: ${url}`);
  }
  return realFetch(input, init);
};
const { connect, createDataItemSigner } = await import("@permaweb/aoconnect");

const config = JSON.parse(readFileSync(0, "utf8"));
const TIMEOUT_MS = config.timeout_ms ?? 20000;
const signer = createDataItemSigner(JSON.parse(readFileSync(config.wallet, "utf8")));
const ao = connect({
  MODE: "legacy",
  GATEWAY_URL: config.gateway,
  GRAPHQL_URL: config.graphql,
  MU_URL: config.mu,
  CU_URL: config.cu,
  fetch: globalThis.fetch,
  noLog: true,
});
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// the CU may not see a process the gateway has not indexed yet: wait that race out
async function untilFound(call) {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    const answer = await call();
    if (!(answer && typeof answer.error === "string") || Date.now() > deadline) return answer;
    await sleep(100);
  }
}

const out = { ok: false, blocked };
try {
  out.process = await ao.spawn({
    module: config.module,
    scheduler: config.scheduler,
    signer,
    tags: [{ name: "Name", value: "wasm-echo" }, { name: "Authority", value: config.mu_address }],
    data: "spawned",
  });
  out.message = await ao.message({
    process: out.process,
    signer,
    tags: [{ name: "Action", value: "Say" }],
    data: "hello from aoconnect",
  });
  out.result = await untilFound(() => ao.result({ process: out.process, message: out.message }));
  out.dryrun = await untilFound(() =>
    ao.dryrun({ process: out.process, tags: [{ name: "Action", value: "Say" }], data: "dry" }),
  );
  out.results = await untilFound(() => ao.results({ process: out.process, sort: "ASC", limit: 10 }));
  out.ok = true;
} catch (e) {
  out.error = String(e?.stack || e);
}
process.stdout.write(JSON.stringify(out) + "\n");
