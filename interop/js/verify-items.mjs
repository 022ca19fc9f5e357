#!/usr/bin/env node
// Verify ANS-104 data items and bundles with the reference JS library
// (@dha-team/arbundles). Used by the Python interop tests:
//
//   node interop/js/verify-items.mjs input.json      (or "-" / no argument: read stdin)
//
// input.json:  {"items": ["<base64 raw item>", ...], "bundles": ["<base64 raw bundle>", ...]}
// Both standard and URL-safe base64 are accepted (padding optional).
//
// stdout: a single JSON document
//   {"items":   [{"valid", "id", "signature_type", "owner", "target", "anchor",
//                 "anchor_b64url", "signature", "tags", "data_b64",
//                 "signature_data_hex", "error"}, ...],
//    "bundles": [{"valid", "item_ids", "computed_item_ids", "header_ids_match",
//                 "items_valid", "error"}, ...]}
//
// Per-entry failures (bad base64, truncated bytes, unknown signature type, ...)
// are reported in that entry's "error" field; they never abort the run.
// Exit status: 0 when the output was written, 2 on a usage / input-file error.

import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { Bundle, DataItem } from "@dha-team/arbundles";

// Keep stdout clean for the JSON result: arweave-js prints a console.warn on
// every failed RSA verification, and other libraries may log as well.
for (const level of ["log", "info", "warn", "debug"]) {
  console[level] = (...args) => process.stderr.write(args.map(String).join(" ") + "\n");
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");
const errText = (e) => (e && e.message ? e.message : String(e));

function decodeB64(s) {
  if (typeof s !== "string") throw new Error("expected a base64 string");
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(s)) throw new Error("invalid base64");
  return Buffer.from(s, "base64"); // Node accepts both alphabets
}

// arbundles reads past the end of short buffers silently (subarray clamps), so
// report truncation explicitly. Returns a message or null.
function structuralProblem(item, length) {
  const sigLen = item.signatureLength; // throws on an unknown signature type
  const ownerLen = item.ownerLength;
  let pos = 2 + sigLen + ownerLen;
  if (length < pos + 1) return `truncated before target flag (${length} bytes)`;
  const raw = item.getRaw();
  if (raw[pos] > 1) return `target presence byte is ${raw[pos]}`;
  pos += raw[pos] === 1 ? 33 : 1;
  if (length < pos + 1) return `truncated before anchor flag (${length} bytes)`;
  if (raw[pos] > 1) return `anchor presence byte is ${raw[pos]}`;
  pos += raw[pos] === 1 ? 33 : 1;
  if (length < pos + 16) return `truncated in tag header (${length} bytes)`;
  let tagBytes = 0;
  for (let i = pos + 15; i >= pos + 8; i--) tagBytes = tagBytes * 256 + raw[i];
  if (length < pos + 16 + tagBytes) return `truncated in tags (${length} bytes, tags need ${pos + 16 + tagBytes})`;
  return null;
}

async function inspectItem(b64) {
  const out = {
    valid: false,
    id: null,
    signature_type: null,
    owner: null,
    target: "",
    anchor: "",
    anchor_b64url: "",
    signature: null,
    tags: [],
    data_b64: "",
    signature_data_hex: null,
    error: null,
  };
  let raw;
  try {
    raw = decodeB64(b64);
  } catch (e) {
    out.error = `decode: ${errText(e)}`;
    return out;
  }
  const errors = [];
  try {
    out.valid = (await DataItem.verify(raw)) === true;
  } catch (e) {
    out.valid = false;
    errors.push(`verify: ${errText(e)}`);
  }
  // Field extraction is best-effort: each getter may throw on malformed input.
  const item = new DataItem(raw);
  try {
    out.signature_type = raw.length >= 2 ? item.signatureType : null;
    if (out.signature_type === null) throw new Error(`input is only ${raw.length} bytes`);
  } catch (e) {
    errors.push(`signature_type: ${errText(e)}`);
    out.error = errors.join("; ");
    return out; // nothing else can be parsed without a known signature type
  }
  try {
    const problem = structuralProblem(item, raw.length);
    if (problem) errors.push(`layout: ${problem}`);
  } catch (e) {
    errors.push(`layout: ${errText(e)}`);
  }
  const field = (name, fn) => {
    try {
      out[name] = fn();
    } catch (e) {
      errors.push(`${name}: ${errText(e)}`);
    }
  };
  field("signature", () => b64url(item.rawSignature));
  field("id", () => b64url(createHash("sha256").update(item.rawSignature).digest()));
  field("owner", () => b64url(item.rawOwner));
  field("target", () => b64url(item.rawTarget));
  field("anchor", () => item.rawAnchor.toString("utf8"));
  field("anchor_b64url", () => b64url(item.rawAnchor));
  field("tags", () => item.tags.map((t) => ({ name: t.name, value: t.value })));
  field("data_b64", () => item.rawData.toString("base64"));
  try {
    out.signature_data_hex = Buffer.from(await item.getSignatureData()).toString("hex");
  } catch (e) {
    errors.push(`signature_data: ${errText(e)}`);
  }
  if (errors.length) out.error = errors.join("; ");
  return out;
}

async function inspectBundle(b64) {
  const out = {
    valid: false,
    item_ids: [],
    computed_item_ids: [],
    header_ids_match: null,
    items_valid: [],
    error: null,
  };
  try {
    const raw = decodeB64(b64);
    if (raw.length < 32) throw new Error(`bundle shorter than 32 bytes (${raw.length})`);
    // Guard against absurd item counts: arbundles would loop over the whole
    // (possibly 2^256) count before noticing anything.
    let count = 0n;
    for (let i = 31; i >= 0; i--) count = count * 256n + BigInt(raw[i]);
    if (32n + 64n * count > BigInt(raw.length)) {
      throw new Error(`bundle header declares ${count} items but input is only ${raw.length} bytes`);
    }
    const bundle = new Bundle(raw);
    out.item_ids = bundle.getIds();
    out.computed_item_ids = bundle.items.map((it) => b64url(createHash("sha256").update(it.rawSignature).digest()));
    out.header_ids_match = out.item_ids.every((id, i) => id === out.computed_item_ids[i]);
    out.items_valid = [];
    for (const it of bundle.items) {
      try {
        out.items_valid.push((await it.isValid()) === true);
      } catch (e) {
        out.items_valid.push(false);
      }
    }
    // NB: arbundles' Bundle.verify() does not compare the header ids with the
    // items' real ids; header_ids_match reports that separately.
    out.valid = (await bundle.verify()) === true;
  } catch (e) {
    out.valid = false;
    out.error = errText(e);
  }
  return out;
}

async function main() {
  const arg = process.argv[2];
  let input;
  try {
    const text = !arg || arg === "-" ? readFileSync(0, "utf8") : readFileSync(arg, "utf8");
    input = JSON.parse(text);
  } catch (e) {
    process.stderr.write(`verify-items: cannot read input: ${errText(e)}\n`);
    process.exit(2);
  }
  const items = Array.isArray(input?.items) ? input.items : [];
  const bundles = Array.isArray(input?.bundles) ? input.bundles : [];
  const result = { items: [], bundles: [] };
  for (const b of items) result.items.push(await inspectItem(b));
  for (const b of bundles) result.bundles.push(await inspectBundle(b));
  process.stdout.write(JSON.stringify(result) + "\n");
}

await main();
