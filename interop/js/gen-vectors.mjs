#!/usr/bin/env node
// Generate ANS-104 interop test vectors with the reference JS library
// (@dha-team/arbundles) into tests/interop/vectors/:
//
//   keys.json      fixed TEST keys (loaded if present, created otherwise)
//   items.json     signed data items (signature types 1-4) + tampered copies
//   bundles.json   binary bundles built with bundleAndSignData
//   deephash.json  deepHash inputs and their 48-byte results
//
// Usage: cd interop/js && npm ci && node gen-vectors.mjs [output-dir]
//
// With keys.json present, the ed25519 (type 2), Ethereum (type 3) and Solana
// (type 4) signatures are reproducible byte for byte; RSA-PSS (type 1)
// signatures use a random salt and change on every run.

import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import Arweave from "arweave";
import {
  ArweaveSigner,
  Bundle,
  DataItem,
  EthereumSigner,
  HexSolanaSigner,
  SolanaSigner,
  bundleAndSignData,
  createData,
  deepHash,
  keccak256,
} from "@dha-team/arbundles";

// arweave-js logs a warning for every failed RSA verification (the tampered
// vectors trigger it on purpose); keep that noise off stdout.
console.warn = () => {};

const HERE = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = resolve(process.argv[2] ?? join(HERE, "..", "..", "tests", "interop", "vectors"));

// ---------------------------------------------------------------------------
// small helpers

const sha256 = (b) => createHash("sha256").update(b).digest();
const b64 = (b) => Buffer.from(b).toString("base64");
const b64url = (b) => Buffer.from(b).toString("base64url");
const hex = (b) => Buffer.from(b).toString("hex");

// Deterministic byte stream: sha256(label || counter) blocks.
function detBytes(label, n) {
  const out = Buffer.alloc(n);
  for (let i = 0, off = 0; off < n; i++) {
    const block = sha256(Buffer.concat([Buffer.from(label), Buffer.from(String(i))]));
    block.copy(out, off, 0, Math.min(32, n - off));
    off += 32;
  }
  return out;
}
const detId = (label) => b64url(sha256(Buffer.from(label))); // 43-char "transaction id"

const B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
function base58(buf) {
  let n = 0n;
  for (const byte of buf) n = n * 256n + BigInt(byte);
  let s = "";
  while (n > 0n) {
    s = B58_ALPHABET[Number(n % 58n)] + s;
    n /= 58n;
  }
  for (const byte of buf) {
    if (byte !== 0) break;
    s = "1" + s;
  }
  return s;
}

function ed25519PublicKey(seed) {
  const pkcs8Prefix = Buffer.from("302e020100300506032b657004220420", "hex");
  const priv = createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: "der", type: "pkcs8" });
  return Buffer.from(createPublicKey(priv).export({ format: "jwk" }).x, "base64url");
}

// EIP-55 checksummed address of an uncompressed (65-byte, 0x04-prefixed) key.
function eip55Address(uncompressedPub) {
  const addr = hex(keccak256(Buffer.from(uncompressedPub).subarray(1)).subarray(-20));
  const h = hex(keccak256(Buffer.from(addr, "ascii")));
  let out = "0x";
  for (let i = 0; i < addr.length; i++) out += parseInt(h[i], 16) >= 8 ? addr[i].toUpperCase() : addr[i];
  return out;
}

// Recover the PSS salt length of an RSA signature (public operation only).
function pssSaltLength(ownerRaw, sigRaw, message) {
  const n = BigInt("0x" + hex(ownerRaw));
  const s = BigInt("0x" + hex(sigRaw));
  let m = 1n;
  let base = s % n;
  for (let e = 65537n; e > 0n; e >>= 1n) {
    if (e & 1n) m = (m * base) % n;
    base = (base * base) % n;
  }
  const emLen = ownerRaw.length; // 4096-bit modulus -> 512 bytes (modBits - 1 = 4095)
  const em = Buffer.from(m.toString(16).padStart(emLen * 2, "0"), "hex");
  if (em[emLen - 1] !== 0xbc) return null;
  const hLen = 32;
  const maskedDb = em.subarray(0, emLen - hLen - 1);
  const H = em.subarray(emLen - hLen - 1, emLen - 1);
  const mask = Buffer.alloc(maskedDb.length);
  for (let c = 0, off = 0; off < mask.length; c++, off += hLen) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(c);
    sha256(Buffer.concat([H, ctr])).copy(mask, off);
  }
  const db = Buffer.from(maskedDb.map((x, i) => x ^ mask[i]));
  db[0] &= 0x7f;
  const one = db.indexOf(1);
  if (one < 0 || db.subarray(0, one).some((x) => x !== 0)) return null;
  const salt = db.subarray(one + 1);
  const mHash = sha256(message);
  const check = sha256(Buffer.concat([Buffer.alloc(8), mHash, salt]));
  return check.equals(H) ? salt.length : null;
}

function writeJson(name, value) {
  const path = join(OUT_DIR, name);
  writeFileSync(path, JSON.stringify(value, null, 2) + "\n");
  return path;
}

// ---------------------------------------------------------------------------
// keys

async function loadOrCreateKeys() {
  const path = join(OUT_DIR, "keys.json");
  const keys = existsSync(path) ? JSON.parse(readFileSync(path, "utf8")) : {};
  let changed = !existsSync(path);

  keys._comment =
    "TEST KEYS ONLY. Committed on purpose as interop test data for pyao; never use them for anything of value.";

  if (!keys.arweave?.jwk) {
    // Only the wallet generation and address derivation are used: no network.
    const arweave = Arweave.init({ host: "127.0.0.1", port: 1984, protocol: "http" });
    const jwk = await arweave.wallets.generate();
    keys.arweave = { jwk, address: await arweave.wallets.jwkToAddress(jwk) };
    changed = true;
  }
  if (!keys.ed25519?.seed_hex) {
    const seed = sha256(Buffer.from("pyao interop ed25519 seed v1"));
    keys.ed25519 = { seed_hex: hex(seed), public_key_hex: hex(ed25519PublicKey(seed)) };
    changed = true;
  }
  if (!keys.ethereum?.private_key_hex) {
    const priv = sha256(Buffer.from("pyao interop secp256k1 key v1"));
    const pub = new EthereumSigner(hex(priv)).publicKey;
    keys.ethereum = { private_key_hex: hex(priv), public_key_hex: hex(pub), address: eip55Address(pub) };
    changed = true;
  }
  if (!keys.solana?.secret_key_b58) {
    const seed = sha256(Buffer.from("pyao interop solana seed v1"));
    const pub = ed25519PublicKey(seed);
    keys.solana = {
      seed_hex: hex(seed),
      public_key_b58: base58(pub),
      secret_key_b58: base58(Buffer.concat([seed, pub])),
    };
    changed = true;
  }
  if (changed) writeJson("keys.json", keys);
  return keys;
}

// ---------------------------------------------------------------------------
// items

function makeSigners(keys) {
  const ed = keys.ed25519;
  const edSecret = base58(Buffer.concat([Buffer.from(ed.seed_hex, "hex"), Buffer.from(ed.public_key_hex, "hex")]));
  return {
    1: new ArweaveSigner(keys.arweave.jwk),
    2: new SolanaSigner(edSecret), // Curve25519 signer, signatureType 2: plain ed25519 over the deep hash
    3: new EthereumSigner(keys.ethereum.private_key_hex), // EIP-191 personal_sign over the deep hash
    4: new HexSolanaSigner(keys.solana.secret_key_b58), // ed25519 over the *hex text* of the deep hash
  };
}

const TARGET = detId("pyao interop target");
const PROCESS_ID = detId("pyao interop process");
const MODULE_ID = detId("pyao interop module");
const SCHEDULER_ID = detId("pyao interop scheduler");
const ANCHOR = "pyao-anchor-0123456789abcdefghij"; // exactly 32 ASCII bytes

function itemCases() {
  const binary = Buffer.concat([
    Buffer.from([0x00, 0xff, 0xfe, 0x80, 0xc0, 0xc1, 0xf5, 0xed, 0xa0, 0x80]), // invalid UTF-8
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  ]);
  return [
    { name: "bare", data: "", opts: {} },
    { name: "data-only", data: "hello from pyao", opts: {} },
    { name: "target-only", data: "", opts: { target: TARGET } },
    { name: "anchor-only", data: "", opts: { anchor: ANCHOR } },
    {
      name: "full",
      data: "full item: target, anchor, tags and data",
      opts: {
        target: TARGET,
        anchor: ANCHOR,
        tags: [
          { name: "App-Name", value: "pyao" },
          { name: "Content-Type", value: "text/plain" },
          { name: "Action", value: "Test" },
        ],
      },
    },
    {
      name: "many-tags",
      data: "128 tags",
      opts: {
        tags: Array.from({ length: 128 }, (_, i) => ({
          name: `Tag-${String(i).padStart(3, "0")}`,
          value: `value-${i}`,
        })),
      },
    },
    {
      name: "long-tag-value",
      data: "one tag value > 63 bytes (multi-byte zigzag varint length)",
      opts: { tags: [{ name: "Long", value: "x".repeat(1000) }, { name: "Short", value: "y" }] },
    },
    {
      name: "empty-tag-value",
      data: "tag with empty value",
      opts: { tags: [{ name: "Empty", value: "" }, { name: "After", value: "ok" }] },
    },
    {
      name: "duplicate-tags",
      data: "duplicate tag names keep order",
      opts: {
        tags: [
          { name: "Dup", value: "first" },
          { name: "Other", value: "x" },
          { name: "Dup", value: "second" },
          { name: "Dup", value: "first" },
        ],
      },
    },
    {
      name: "unicode",
      data: "héllo wörld — 日本語のテキスト 🎉🚀",
      opts: {
        tags: [
          { name: "名前", value: "値" },
          { name: "Emoji-🚀", value: "🎉 party ünïcödé" },
          { name: "Ω", value: "Ελληνικά" },
        ],
      },
    },
    { name: "binary-data", data: binary, opts: { tags: [{ name: "Content-Type", value: "application/octet-stream" }] } },
    { name: "data-10kib", data: detBytes("pyao interop 10KiB", 10 * 1024), opts: {} },
    {
      name: "ao-message",
      data: " ",
      opts: {
        target: PROCESS_ID,
        tags: [
          { name: "Data-Protocol", value: "ao" },
          { name: "Variant", value: "ao.TN.1" },
          { name: "Type", value: "Message" },
          { name: "Action", value: "Eval" },
          { name: "SDK", value: "aoconnect" },
          { name: "Content-Type", value: "text/plain" },
        ],
      },
    },
    {
      name: "ao-process",
      data: " ",
      opts: {
        tags: [
          { name: "Data-Protocol", value: "ao" },
          { name: "Variant", value: "ao.TN.1" },
          { name: "Type", value: "Process" },
          { name: "Module", value: MODULE_ID },
          { name: "Scheduler", value: SCHEDULER_ID },
          { name: "SDK", value: "aoconnect" },
          { name: "Content-Type", value: "text/plain" },
        ],
      },
    },
  ];
}

async function signedItem(signer, data, opts) {
  const item = createData(data, signer, opts);
  await item.sign(signer);
  return item;
}

async function describe(name, raw, extra = {}) {
  const item = new DataItem(Buffer.from(raw));
  const type = item.signatureType;
  const owner = item.rawOwner;
  let ownerAddress = null;
  if (type === 1) ownerAddress = b64url(sha256(owner));
  else if (type === 3) ownerAddress = eip55Address(owner);
  const sigData = Buffer.from(await item.getSignatureData());
  // DataItem.verify() can throw instead of returning false (e.g. @noble/ed25519
  // rejects a signature or key that does not decode to a curve point).
  let verified;
  let verifyError = null;
  try {
    verified = await DataItem.verify(Buffer.from(raw));
  } catch (e) {
    verified = false;
    verifyError = String(e?.message ?? e);
  }
  const entry = {
    name,
    signature_type: type,
    raw_b64: b64(item.getRaw()),
    id: item.id,
    signature: item.signature,
    owner: b64url(owner),
    owner_address: ownerAddress,
    target: item.rawTarget.length ? b64url(item.rawTarget) : "",
    anchor: item.rawAnchor.toString("utf8"),
    tags: item.tags.map((t) => ({ name: t.name, value: t.value })),
    data_b64: b64(item.rawData),
    signature_data_hex: hex(sigData),
    verified,
    ...extra,
  };
  if (verifyError) entry.verify_error = verifyError;
  if (type === 1) entry.pss_salt_length = pssSaltLength(owner, item.rawSignature, sigData);
  return entry;
}

// offset of the first byte of the Avro tag block, computed independently of arbundles
function tagsOffset(raw, sigLen, ownerLen) {
  let pos = 2 + sigLen + ownerLen;
  pos += raw[pos] === 1 ? 33 : 1;
  pos += raw[pos] === 1 ? 33 : 1;
  return pos + 16;
}

const SIG_LEN = { 1: 512, 2: 64, 3: 65, 4: 64 };
const OWNER_LEN = { 1: 512, 2: 32, 3: 65, 4: 32 };

// ---------------------------------------------------------------------------

async function main() {
  mkdirSync(OUT_DIR, { recursive: true });
  const keys = await loadOrCreateKeys();
  const signers = makeSigners(keys);

  const items = [];
  const byName = {};
  for (const type of [1, 2, 3, 4]) {
    for (const c of itemCases()) {
      const name = `${c.name}-type${type}`;
      const item = await signedItem(signers[type], c.data, c.opts);
      byName[name] = item;
      items.push(await describe(name, item.getRaw()));
    }
  }

  // Tampered copies: same bytes with a single bit flipped, as judged by arbundles.
  for (const src of ["full-type1", "full-type2", "full-type3", "full-type4"]) {
    const raw = byName[src].getRaw();
    const type = Number(src.slice(-1));
    const flips = {
      "tampered-data": raw.length - 1, // last data byte
      "tampered-signature": 2 + 10, // a signature byte (this also changes the id)
      "tampered-tag": tagsOffset(raw, SIG_LEN[type], OWNER_LEN[type]) + 3, // inside the first tag name
      "tampered-owner": 2 + SIG_LEN[type] + 5,
      "tampered-target": 2 + SIG_LEN[type] + OWNER_LEN[type] + 1 + 4,
    };
    for (const [kind, offset] of Object.entries(flips)) {
      const copy = Buffer.from(raw);
      copy[offset] ^= 0x01;
      items.push(await describe(`${kind}-type${type}`, copy, { tampered_from: src, flipped_offset: offset }));
    }
  }
  {
    // Tag count in the header disagrees with the Avro block (structural rejection).
    const copy = Buffer.from(byName["full-type2"].getRaw());
    const off = tagsOffset(copy, SIG_LEN[2], OWNER_LEN[2]) - 16;
    copy[off] = 2; // says 2 tags, the block holds 3
    items.push(await describe("tampered-tag-count-type2", copy, { tampered_from: "full-type2", flipped_offset: off }));
  }

  // Bundles. The items are already signed (their ids are set), so
  // bundleAndSignData keeps their signatures and only uses the signer argument
  // for unsigned items.
  const bundles = [];
  const addBundle = async (name, bundle, itemNames) => {
    bundles.push({
      name,
      raw_b64: b64(bundle.getRaw()),
      item_ids: bundle.getIds(),
      item_names: itemNames,
      verified: await bundle.verify(),
    });
    return bundle;
  };
  const mixedNames = ["data-only-type1", "ao-message-type2", "ao-message-type3", "full-type4", "bare-type1"];
  const mixed = await addBundle(
    "bundle-mixed",
    await bundleAndSignData(mixedNames.map((n) => byName[n]), signers[1]),
    mixedNames,
  );
  await addBundle(
    "bundle-single-type1",
    await bundleAndSignData([byName["ao-process-type1"]], signers[1]),
    ["ao-process-type1"],
  );
  const eth3 = ["bare-type3", "unicode-type3", "binary-data-type3"];
  await addBundle(
    "bundle-three-type3",
    await bundleAndSignData(eth3.map((n) => byName[n]), signers[1]),
    eth3,
  );
  // Unsigned items: bundleAndSignData signs them with the bundle signer (Ethereum here).
  await addBundle(
    "bundle-signed-by-bundler-type3",
    await bundleAndSignData(
      [createData("first", signers[3], { tags: [{ name: "N", value: "1" }] }), createData("second", signers[3])],
      signers[3],
    ),
    ["(unsigned, signed by bundler)", "(unsigned, signed by bundler)"],
  );
  await addBundle("bundle-empty", await bundleAndSignData([], signers[1]), []);
  {
    // One item's data flipped inside an otherwise well-formed bundle.
    // Flip the last data byte of the first item.
    const raw = Buffer.from(mixed.getRaw());
    const firstSize = Number(raw.readBigUInt64LE(32));
    const firstEnd = 32 + 64 * mixedNames.length + firstSize;
    raw[firstEnd - 1] ^= 0x01;
    bundles.push({
      name: "bundle-tampered-item",
      raw_b64: b64(raw),
      item_ids: new Bundle(raw).getIds(),
      item_names: mixedNames,
      verified: await new Bundle(raw).verify(),
      tampered_from: "bundle-mixed",
      flipped_offset: firstEnd - 1,
    });
  }
  {
    // Header id of item 0 replaced: arbundles' Bundle.verify() never reads header ids.
    const raw = Buffer.from(mixed.getRaw());
    sha256(Buffer.from("not the id")).copy(raw, 32 + 32);
    bundles.push({
      name: "bundle-wrong-header-id",
      raw_b64: b64(raw),
      item_ids: new Bundle(raw).getIds(),
      item_names: mixedNames,
      verified: await new Bundle(raw).verify(),
      tampered_from: "bundle-mixed",
      note: "arbundles Bundle.verify() does not compare header ids with item ids, so this is reported as verified",
    });
  }

  // A bundle wrapped as an ANS-104 data item (Bundle-Format / Bundle-Version tags).
  {
    const wrapped = await signedItem(signers[1], mixed.getRaw(), {
      tags: [
        { name: "Bundle-Format", value: "binary" },
        { name: "Bundle-Version", value: "2.0.0" },
      ],
    });
    items.push(await describe("bundle-as-item", wrapped.getRaw(), { bundle_name: "bundle-mixed" }));
  }

  // deepHash vectors.
  const blob = (b) => ({ b64: b64(b) });
  const fromJson = (x) => (Array.isArray(x) ? x.map(fromJson) : Buffer.from(x.b64, "base64"));
  const dhInputs = [
    ["empty-blob", blob(Buffer.alloc(0))],
    ["blob-hello", blob(Buffer.from("hello"))],
    ["blob-binary-1000", blob(detBytes("pyao deephash blob", 1000))],
    ["empty-list", []],
    ["list-of-empty-blob", [blob(Buffer.alloc(0))]],
    ["list-of-empty-list", [[]]],
    ["list-two-blobs", [blob(Buffer.from("a")), blob(Buffer.from("bc"))]],
    ["nested", [[], [blob(Buffer.from("x")), [blob(Buffer.from("y")), []]], blob(Buffer.from("z"))]],
    ["list-of-12", Array.from({ length: 12 }, (_, i) => blob(Buffer.from(String(i))))],
    [
      "dataitem-shape",
      [
        blob(Buffer.from("dataitem")),
        blob(Buffer.from("1")),
        blob(Buffer.from("2")),
        blob(Buffer.from(keys.ed25519.public_key_hex, "hex")),
        blob(Buffer.alloc(0)),
        blob(Buffer.alloc(0)),
        blob(Buffer.alloc(0)),
        blob(Buffer.from("hello from pyao")),
      ],
    ],
  ];
  const deephash = [];
  for (const [name, input] of dhInputs) {
    deephash.push({ name, input, hash_hex: hex(await deepHash(fromJson(input))) });
  }

  const paths = [writeJson("items.json", items), writeJson("bundles.json", bundles), writeJson("deephash.json", deephash)];

  // Self-checks: every untampered vector must verify, every tampered one must not.
  const problems = [];
  for (const it of items) {
    const expected = !it.tampered_from;
    if (it.verified !== expected) problems.push(`item ${it.name}: verified=${it.verified}`);
  }
  for (const b of bundles) {
    const expected = b.name !== "bundle-tampered-item";
    if (b.verified !== expected) problems.push(`bundle ${b.name}: verified=${b.verified}`);
  }
  const dh = deephash.find((d) => d.name === "dataitem-shape");
  const src = items.find((i) => i.name === "data-only-type2");
  if (dh.hash_hex !== src.signature_data_hex) problems.push("deephash dataitem-shape != data-only-type2 signature data");
  for (const p of paths) process.stdout.write(`wrote ${p} (${readFileSync(p).length} bytes)\n`);
  if (problems.length) {
    process.stderr.write(`self-check FAILED:\n  ${problems.join("\n  ")}\n`);
    process.exit(1);
  }
  process.stdout.write(`${items.length} items, ${bundles.length} bundles, ${deephash.length} deepHash vectors: self-check ok\n`);
}

await main();
