// Runs a message sequence through the official @permaweb/ao-loader, as the official CU does:
// each call gets the previous call's Memory (copied in) and returns a copy of the new memory;
// an Error result keeps the previous memory (servers/cu evaluate.js mergeOutput).
//
//   node [--experimental-wasm-memory64] ao-loader-run.mjs < request.json > results.json
//
// request: {module: "/path/process.wasm", format, steps: [{msg, env, fresh?: bool}], timing?: bool}
//   fresh: evaluate this step on a new loader instance given the memory so far ("memory restore")
// results: {results: [{Output, Messages, Spawns, Assignments, Error, GasUsed, MemorySha256}], seconds: [per step],
//           memory: bytes at the end}  (MemorySha256: hex digest of the memory after the step; not when timing)
import fs from 'node:fs'
import { createHash } from 'node:crypto'
import AoLoader from '@permaweb/ao-loader'

const request = JSON.parse(fs.readFileSync(0, 'utf8'))
const binary = fs.readFileSync(request.module)
const options = { format: request.format }

let handle = await AoLoader(binary, options)
let memory = null
const results = []
const seconds = []
for (const step of request.steps) {
  if (step.fresh) handle = await AoLoader(binary, options)
  const started = process.hrtime.bigint()
  let out
  try {
    out = await handle(memory, step.msg, step.env)
  } catch (err) {
    out = { Error: String(err && err.message ? err.message : err) }
  }
  seconds.push(Number(process.hrtime.bigint() - started) / 1e9)
  if (out.Memory && !out.Error) memory = out.Memory
  const { Memory, ...rest } = out
  if (!request.timing && memory) rest.MemorySha256 = createHash('sha256').update(memory).digest('hex')
  results.push(request.timing ? { Error: rest.Error ?? null } : rest)
}
process.stdout.write(JSON.stringify({ results, seconds, memory: memory ? memory.byteLength : 0 }))
