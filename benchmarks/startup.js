// Start-up costs, each in fresh processes, medians of N runs (default 7), alternating so that
// machine noise falls on all alike:
//   node       `node -e 0`: node's own start-up
//   jose       `import('jose')`
//   ours       `import('pkcs11-webcrypto')` (the built dist/index.js), and whether it touched the
//              global Reflect (reflect-metadata's polyfill: it must not, until certificates are used)
//   keys       `pkcs11-jwt keys` on the built-in development token (made first if missing)
// Prints the figures and the two ratios the README quotes: ours / jose (target <= 1.5) and
// keys - node (target <= 0.3 s).
//
//   npm run build && node benchmarks/startup.js [--runs 11]
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { median } from './lib/measure.js'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '7' } } })
const RUNS = Number(values.runs)
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = join(ROOT, 'dist/cli/bin.js')
const home = mkdtempSync(join(tmpdir(), 'startup-'))
const cliEnv = { PATH: process.env.PATH, HOME: home, PKCS11_WEBCRYPTO_HOME: home }

/** Milliseconds a fresh node takes to run `args`, measured by this process around the spawn. */
function time(args, env = process.env) {
  const start = process.hrtime.bigint()
  const result = spawnSync(process.execPath, args, { cwd: ROOT, env, encoding: 'utf8' })
  const ms = Number(process.hrtime.bigint() - start) / 1e6
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${result.stderr}`)
  return { ms, stdout: result.stdout }
}

const importOf = (specifier) => `const t = performance.now(); await import(${JSON.stringify(specifier)}); const ms = performance.now() - t; console.log(JSON.stringify({ ms, reflect: typeof Reflect.getMetadata === 'function' }))`

const CASES = {
  node: () => time(['-e', '0']).ms,
  jose: () => time(['--input-type=module', '-e', importOf('jose')]).ms,
  ours: () => time(['--input-type=module', '-e', importOf('pkcs11-webcrypto')]).ms,
  keys: () => time([CLI, 'keys'], cliEnv).ms,
}

try {
  time([CLI, 'keys'], cliEnv) // makes the development token and its keys
  const inProcess = JSON.parse(time(['--input-type=module', '-e', importOf('pkcs11-webcrypto')]).stdout)
  const samples = Object.fromEntries(Object.keys(CASES).map((name) => [name, []]))
  for (let run = 0; run < RUNS; run++) for (const [name, measure] of Object.entries(CASES)) samples[name].push(measure())
  const m = Object.fromEntries(Object.entries(samples).map(([name, list]) => [name, median(list)]))
  console.log(`node ${process.version}, ${RUNS} runs each, medians of whole processes (ms):`)
  for (const [name, ms] of Object.entries(m)) console.log(`  ${name.padEnd(5)} ${ms.toFixed(0)}`)
  console.log(`import('pkcs11-webcrypto') / import('jose'), process times: ${(m.ours / m.jose).toFixed(2)}x (target <= 1.5x)`)
  console.log(`import('pkcs11-webcrypto') / import('jose'), import alone: ${((m.ours - m.node) / (m.jose - m.node)).toFixed(2)}x`)
  console.log(`pkcs11-jwt keys - node start-up: ${((m.keys - m.node) / 1000).toFixed(3)} s (target <= 0.3 s)`)
  console.log(`global Reflect polyfilled by the import: ${inProcess.reflect}`)
} finally {
  rmSync(home, { recursive: true, force: true })
}
