// npm run bench [-- --alg RS256,ES256] [--concurrency 1,4,16,64] [--duration 2] [--warmup 0.5]
//   [--rounds 1] [--quick] [--contenders ours-jose,raw-sync,..] [--json FILE] [--compare OLD.json] [--jwe]
// Without --alg (or with --jwe), JWE decrypts follow the signing table (benchmarks/jwe.js, at 1 and 16).
// (BENCH_DEBUG=1 prints the whole stderr of a contender that failed.)
//
// Signs on one fresh SoftHSM token with this project and its peers, side by side. Every contender
// runs in a child process of its own, one after another (never two at once), for each alg; each
// in-process contender measures each concurrency in turn. With --rounds N the contenders of an alg
// run N times over, interleaved, and each figure is the median of its rounds, each ratio the median
// of the ratios within a round: on a shared machine whose speed drifts by the minute, that compares
// contenders measured side by side. Prints one table and writes it as JSON.
import { execFileSync, fork, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { createBenchToken } from './lib/token.js'
import { median } from './lib/measure.js'

const HERE = dirname(fileURLToPath(import.meta.url))
const N = availableParallelism()
const ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA']

// kind: 'ours' | 'peer' (counts for "best peer") | 'device' (the device limit) | 'process-limit' (the
// most one process signs) | 'jose' (c_jose) | 'reference'.
// threads: a contender with fixed parallelism runs once per alg at these, not at each concurrency.
const CONTENDERS = [
  { id: 'raw-sync', kind: 'device', name: `device limit: pkcs11js sync C_Sign, ${N} processes`, threads: [N] },
  { id: 'raw-threads', kind: 'process-limit', name: `one-process limit: pkcs11js sync C_Sign, ${N} threads of one process, a session copy of the key each`, threads: [N] },
  { id: 'ours-jose', kind: 'ours', name: 'this project: jose SignJWT via installGlobal' },
  { id: 'ours-subtle', kind: 'ours', name: 'this project: hsm.subtle.sign' },
  { id: 'ours-jose-cluster', kind: 'ours', name: `this project: jose SignJWT in ${N} processes, signing in place (inPlace: 'always')` },
  { id: 'raw-async', kind: 'peer', name: 'pkcs11js C_SignAsync, a session per call in flight' },
  { id: 'node-webcrypto-p11', kind: 'peer', name: 'node-webcrypto-p11 (one session)' },
  { id: 'java', kind: 'peer', name: 'Java 17 SunPKCS11, threads', threads: [...new Set([1, N, 2 * N])] },
  { id: 'node-software', kind: 'reference', name: "Node's WebCrypto, software key" },
  { id: 'jose-cpu', kind: 'jose', name: "jose's own work per JWT (a subtle.sign that answers at once): c_jose" },
]
/** jose contenders: their figures are also a ratio to the JWT limit L. */
const THROUGH_JOSE = new Set(['ours-jose', 'ours-jose-cluster'])
/** Of those, the ones in one process: also a ratio to the one-process JWT limit L1. */
const ONE_PROCESS_JOSE = new Set(['ours-jose'])
/** What the concurrency-1 target allows beyond Java's one-thread p50 and c_jose (issue #17). */
const CONC1_SLACK_MS = 0.03

const { values: flags } = parseArgs({
  options: {
    alg: { type: 'string' },
    concurrency: { type: 'string' },
    duration: { type: 'string' },
    warmup: { type: 'string' },
    rounds: { type: 'string' },
    contenders: { type: 'string' },
    quick: { type: 'boolean', default: false },
    json: { type: 'string' },
    compare: { type: 'string' },
    jwe: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
})
if (flags.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('\n').slice(0, 3).join('\n').replaceAll(/^\/\/ ?/gm, ''))
  process.exit(0)
}
const list = (value, fallback) => (value ? value.split(',').map((s) => s.trim()).filter(Boolean) : fallback)
const algs = list(flags.alg, ALGS)
const concurrencies = list(flags.concurrency, flags.quick ? ['1', '16'] : ['1', '4', '16', '64']).map(Number)
const duration = Number(flags.duration ?? (flags.quick ? 0.3 : 2))
const warmup = Number(flags.warmup ?? (flags.quick ? 0.1 : 0.5))
const rounds = Number(flags.rounds ?? 1)
const contenders = CONTENDERS.filter((c) => list(flags.contenders, CONTENDERS.map((c) => c.id)).includes(c.id))
const jsonFile = flags.json ?? join(HERE, 'results', 'latest.json')
for (const alg of algs) if (!ALGS.includes(alg)) usage(`unknown alg ${alg}; one of ${ALGS.join(', ')}`)
if (concurrencies.some((c) => !Number.isInteger(c) || c < 1)) usage('--concurrency takes positive integers: 1,4,16')
if (!(duration > 0) || !(warmup >= 0)) usage('--duration and --warmup take seconds')
if (!Number.isInteger(rounds) || rounds < 1) usage('--rounds takes a positive integer')

function usage(message) {
  console.error(`bench: ${message}`)
  process.exit(2)
}

/** Runs one contender for one alg at `cells` (concurrencies, or its thread counts) in a child process; resolves with its rows. */
function runContender(contender, alg, token, cells) {
  // The JVM compiles as it goes: give it a longer warm-up than Node needs.
  const job = { alg, token, concurrencies: cells, duration, warmup: contender.id === 'java' ? Math.max(warmup, flags.quick ? 0.3 : 1) : warmup }
  const budget = cells.length * (duration + job.warmup) + 30 // seconds; a child still running then has hung
  return new Promise((resolve) => {
    const child = fork(join(HERE, 'contenders', `${contender.id}.js`), [JSON.stringify(job)], {
      env: { ...process.env, SOFTHSM2_CONF: token.conf },
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    })
    let stderr = ''
    let reply
    let hung = false
    const timer = setTimeout(() => {
      hung = true
      child.kill('SIGKILL')
    }, budget * 1000)
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.on('message', (message) => { reply = message })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const row = { alg, contender: contender.id, kind: contender.kind, fixed: Boolean(contender.threads) }
      if (reply?.results) return resolve(reply.results.map((result) => ({ ...row, ...result })))
      if (process.env.BENCH_DEBUG) console.error(stderr)
      const last = stderr.trim().split('\n').filter((line) => line && !/^\s+at |^Node\.js v/.test(line)).slice(-2).join(' | ')
      const why = reply?.na ?? (hung ? `hung (killed after ${budget} s)`
        : `${signal ? `crashed (${signal})` : `failed (exit ${code})`}${last ? `: ${last}` : ''}`)
      resolve(cells.map((concurrency) => ({ ...row, concurrency, na: why })))
    })
  })
}

const measured = (r) => r && !r.na && r.ops > 0

/**
 * The JWT limit at `concurrency`: L = min(concurrency, cores) / (cores / D + c_jose), D the device
 * limit (ops/s, so cores / D is the CPU a signature takes) and c_jose jose's own CPU per JWT (s),
 * both from the same round: fewer calls in flight than cores keep only that many busy. With `kind`
 * 'process-limit', L1: D the most one process signs with a thread per core. Undefined when either
 * is missing.
 */
function jwtLimit(rows, alg, concurrency, kind = 'device') {
  const device = rows.find((r) => r.alg === alg && r.kind === kind && measured(r))
  const jose = rows.find((r) => r.alg === alg && r.kind === 'jose' && r.concurrency === concurrency && measured(r))
  if (!device || !jose) return undefined
  const cJose = jose.cpuMicrosPerOp / 1e6
  return { opsPerSec: Math.min(concurrency, N) / (N / device.opsPerSec + cJose) }
}

/** Adds to each row its figures as ratios to the device limit, to the best peer at its concurrency and (through jose) to the JWT limit. */
function addRatios(rows) {
  for (const row of rows) {
    if (!measured(row)) continue
    const device = rows.find((r) => r.alg === row.alg && r.kind === 'device' && measured(r))
    const limit = THROUGH_JOSE.has(row.contender) && jwtLimit(rows, row.alg, row.concurrency)
    if (limit) row.vsJwtLimit = { opsPerSec: row.opsPerSec / limit.opsPerSec, limit: limit.opsPerSec }
    // Fewer calls in flight than cores: the process's signing threads do not all sign at once, and the one-process limit does not apply.
    const processLimit = ONE_PROCESS_JOSE.has(row.contender) && row.concurrency >= N && jwtLimit(rows, row.alg, row.concurrency, 'process-limit')
    if (processLimit) row.vsProcessJwtLimit = { opsPerSec: row.opsPerSec / processLimit.opsPerSec, limit: processLimit.opsPerSec }
    const best = bestPeer(rows, row.alg, row.concurrency)
    row.bestPeer = best ? `${best.contender}@${best.concurrency}` : null
    for (const [name, other] of [['vsDevice', device], ['vsBestPeer', best]]) {
      if (!other) continue
      row[name] = {
        opsPerSec: row.opsPerSec / other.opsPerSec,
        p50Ms: row.p50Ms / other.p50Ms,
        p99Ms: row.p99Ms / other.p99Ms,
      }
    }
  }
}

/** The peer with the most signatures a second at `concurrency`; of Java, 1 thread at 1, else its best of N and 2N threads. */
function bestPeer(rows, alg, concurrency) {
  const peers = rows.filter((r) => r.alg === alg && r.kind === 'peer' && !r.na && r.ops > 0 &&
    (r.fixed ? (concurrency === 1 ? r.concurrency === 1 : r.concurrency > 1) : r.concurrency === concurrency))
  return peers.sort((a, b) => b.opsPerSec - a.opsPerSec)[0]
}

/**
 * One row per cell: the round with the median ops/s gives the figures, each ratio is the median of
 * the cell's ratios in every round, and errors are summed. Rounds in which the cell failed (a
 * crash) are left out of the medians and counted; a cell that failed in every round is n/a.
 */
function medianOfRounds(allRounds) {
  if (allRounds.length === 1) return allRounds[0]
  const key = (r) => `${r.alg}|${r.contender}|${r.concurrency}`
  const cells = new Map()
  for (const row of allRounds.flat()) cells.set(key(row), [...cells.get(key(row)) ?? [], row])
  return [...cells.values()].map((rounds) => {
    const failed = rounds.filter((r) => r.na)
    const cell = rounds.filter((r) => !r.na)
    if (cell.length === 0) return failed[0]
    const sorted = [...cell].sort((a, b) => a.opsPerSec - b.opsPerSec)
    const row = { ...sorted[Math.floor((sorted.length - 1) / 2)], errors: cell.reduce((sum, r) => sum + (r.errors ?? 0), 0), opsPerSecByRound: rounds.map((r) => r.opsPerSec ?? null) }
    if (failed.length > 0) Object.assign(row, { failedRounds: failed.length, failure: failed[0].na })
    for (const name of ['vsDevice', 'vsBestPeer', 'vsJwtLimit', 'vsProcessJwtLimit']) {
      if (!cell.every((r) => r[name])) continue
      row[name] = Object.fromEntries(Object.keys(cell[0][name]).map((k) => [k, median(cell.map((r) => r[name][k]))]))
    }
    return row
  })
}

// --- printing -----------------------------------------------------------------------------------

const int = (n) => Math.round(n).toLocaleString('en-US')
const ms = (n) => (n == null ? '-' : n < 1 ? n.toFixed(3) : n < 10 ? n.toFixed(2) : n.toFixed(1))
const ratio = (r, key) => (r ? r[key].toFixed(2) : '-')
const withRatios = (value, row, key) => (row.vsDevice || row.vsBestPeer ? `${value} (${ratio(row.vsDevice, key)}/${ratio(row.vsBestPeer, key)})` : value)

function printTable(rows) {
  const header = ['alg', 'contender', 'conc', 'ops/s (÷dev/÷peer)', '÷L', '÷L1', 'p50 ms (÷dev/÷peer)', 'p99 ms (÷dev/÷peer)', 'loop p99 ms', 'errors']
  const lines = [header]
  for (const row of orderRows(rows)) {
    const conc = row.contender === 'raw-sync' ? `${row.concurrency} proc` : row.fixed ? `${row.concurrency} thr` : String(row.concurrency)
    if (row.na) lines.push([row.alg, row.contender, conc, `n/a: ${row.na}`, '', '', '', '', '', ''])
    else {
      // The jose-cpu row shows c_jose itself in the ÷L column: µs of CPU a JWT.
      const vsL = row.kind === 'jose' ? `${row.cpuMicrosPerOp.toFixed(1)} µs` : row.vsJwtLimit ? row.vsJwtLimit.opsPerSec.toFixed(2) : '-'
      const vsL1 = row.vsProcessJwtLimit ? row.vsProcessJwtLimit.opsPerSec.toFixed(2) : '-'
      lines.push([row.alg, row.contender, conc, withRatios(int(row.opsPerSec), row, 'opsPerSec'), vsL, vsL1, withRatios(ms(row.p50Ms), row, 'p50Ms'),
        withRatios(ms(row.p99Ms), row, 'p99Ms'), ms(row.loopP99Ms), row.errors ? int(row.errors) : '0'])
    }
  }
  const widths = header.map((_, i) => Math.max(...lines.filter((l) => i < 3 || !l[3].startsWith('n/a')).map((l) => l[i].length)))
  let lastKey
  for (const line of lines) {
    const key = line === header ? null : `${line[0]}`
    if (lastKey !== undefined && key !== lastKey) console.log(widths.map((w) => '-'.repeat(w)).join('-+-'))
    lastKey = key
    if (line[3].startsWith('n/a')) console.log([...line.slice(0, 3).map((c, i) => c.padEnd(widths[i])), line[3]].join(' | '))
    else console.log(line.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | '))
  }
  printTargets(rows)
  const errors = rows.filter((r) => r.errorSample)
  for (const r of errors) console.log(`errors, ${r.alg} ${r.contender} at ${r.concurrency}: ${r.errors} (first: ${r.errorSample})`)
  for (const r of rows.filter((row) => row.failedRounds)) {
    console.log(`failed rounds, ${r.alg} ${r.contender} at ${r.concurrency}: ${r.failedRounds} of ${rounds} (${r.failure}); the row shows the others`)
  }
}

/**
 * Issue #17's figures: the JWT limit L per alg and concurrency, and at concurrency 1 the p50
 * through jose against Java's one thread + c_jose + 30 µs (EdDSA: against the raw synchronous call,
 * as Java 17 has none).
 */
function printTargets(rows) {
  const lines = []
  for (const alg of algs) {
    for (const concurrency of concurrencies) {
      const limit = rows.find((r) => r.alg === alg && r.concurrency === concurrency && r.vsJwtLimit)?.vsJwtLimit.limit
      const jose = rows.find((r) => r.alg === alg && r.kind === 'jose' && r.concurrency === concurrency && measured(r))
      if (limit) lines.push(`JWT limit, ${alg} at ${concurrency}: L = ${int(limit)}/s (c_jose ${jose.cpuMicrosPerOp.toFixed(1)} µs)`)
      const processLimit = rows.find((r) => r.alg === alg && r.concurrency === concurrency && r.vsProcessJwtLimit)?.vsProcessJwtLimit.limit
      const processDevice = rows.find((r) => r.alg === alg && r.kind === 'process-limit' && measured(r))
      if (processLimit) lines.push(`  in one process: L1 = ${int(processLimit)}/s (the one-process limit ${int(processDevice.opsPerSec)}/s, ${ratio(processDevice.vsDevice, 'opsPerSec')} of the device limit)`)
      const ours = rows.find((r) => r.alg === alg && r.contender === 'ours-jose' && r.concurrency === concurrency && measured(r))
      const base = rows.find((r) => r.alg === alg && measured(r) && (alg === 'EdDSA' ? r.kind === 'device' : r.contender === 'java' && r.concurrency === 1))
      if (concurrency !== 1 || !ours || !base || !jose) continue
      const budget = base.p50Ms + jose.cpuMicrosPerOp / 1000 + CONC1_SLACK_MS
      const against = alg === 'EdDSA' ? 'raw sync' : "Java's 1 thread"
      lines.push(`  p50 at 1 through jose: ${ms(ours.p50Ms)} ms; allowed ${ms(budget)} ms (${against} ${ms(base.p50Ms)} + c_jose + 0.03): ${ours.p50Ms <= budget ? 'met' : 'not met'}`)
    }
  }
  if (lines.length > 0) console.log(`\n${lines.join('\n')}`)
}

/** Per alg: the device limit and Java's thread runs first, then each concurrency with its contenders. */
function orderRows(rows) {
  const order = (r) => [ALGS.indexOf(r.alg), r.fixed ? 0 : 1, r.fixed ? 0 : r.concurrency, CONTENDERS.findIndex((c) => c.id === r.contender), r.concurrency]
  return [...rows].sort((a, b) => {
    const [x, y] = [order(a), order(b)]
    return x.reduce((d, v, i) => d || v - y[i], 0)
  })
}

function printComparison(rows, oldFile) {
  const old = JSON.parse(readFileSync(oldFile, 'utf8'))
  const key = (r) => `${r.alg}|${r.contender}|${r.concurrency}`
  const before = new Map(old.rows.map((r) => [key(r), r]))
  const pct = (now, then) => (now == null || then == null || !then ? '-' : `${now >= then ? '+' : ''}${((now / then - 1) * 100).toFixed(1)}%`)
  console.log(`\nCompared with ${oldFile} (${old.meta?.date ?? 'undated'}):`)
  const lines = [['alg', 'contender', 'conc', 'ops/s then', 'ops/s now', 'Δ ops/s', 'Δ p50', 'Δ p99', 'Δ loop p99']]
  for (const row of orderRows(rows)) {
    const then = before.get(key(row))
    if (!then || row.na || then.na) continue
    lines.push([row.alg, row.contender, String(row.concurrency), int(then.opsPerSec), int(row.opsPerSec), pct(row.opsPerSec, then.opsPerSec),
      pct(row.p50Ms, then.p50Ms), pct(row.p99Ms, then.p99Ms), pct(row.loopP99Ms, then.loopP99Ms)])
  }
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)))
  for (const line of lines) console.log(line.map((c, i) => (i >= 3 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | '))
}

function versionOf(cmd, args) {
  try {
    return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString().trim() || null
  } catch (error) {
    return error.stderr?.toString().trim().split('\n')[0] || null
  }
}

// --- main ---------------------------------------------------------------------------------------

if (!existsSync(join(HERE, '..', 'dist', 'index.js'))) usage('build the library first: npx tsc -p .  (npm run bench does)')
const started = Date.now()
const loadAtStart = loadavg()[0]
if (loadAtStart > N / 2) console.error(`bench: the machine is busy (load average ${loadAtStart.toFixed(1)} on ${N} cores): figures will be noisy`)
console.error(`bench: making a fresh SoftHSM token (pkcs11-tool${contenders.some((c) => c.id === 'java') ? ' and keytool' : ''} keys) ...`)
const { token, remove } = createBenchToken({ java: contenders.some((c) => c.id === 'java') ? undefined : false })
process.on('exit', remove)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130))

const rounds_ = []
for (const alg of algs) {
  for (let round = 0; round < rounds; round++) {
    const rows = (rounds_[round] ??= [])
    for (const contender of contenders) {
      const t0 = Date.now()
      // A fresh process per concurrency (a crash or a heap grown at 64 spoils no other cell); one for
      // all thread counts of a fixed contender (one JVM start).
      const result = []
      for (const cells of contender.threads ? [contender.threads] : concurrencies.map((c) => [c])) {
        result.push(...await runContender(contender, alg, token, cells))
      }
      rows.push(...result)
      const summary = result.map((r) => (r.na ? `n/a (${r.na})` : `${r.concurrency}:${int(r.opsPerSec)}/s`)).join(' ')
      const which = rounds > 1 ? ` (round ${round + 1}/${rounds})` : ''
      console.error(`bench: ${alg} ${contender.id.padEnd(18)} ${summary}  [${((Date.now() - t0) / 1000).toFixed(1)} s]${which}`)
    }
  }
}
for (const rows of rounds_) addRatios(rows)
const rows = medianOfRounds(rounds_)

const meta = {
  date: new Date().toISOString(),
  seconds: (Date.now() - started) / 1000,
  duration,
  warmup,
  rounds,
  quick: flags.quick,
  cores: N,
  loadAverage: { start: loadAtStart, end: loadavg()[0] },
  cpu: cpus()[0]?.model,
  node: process.version,
  uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? '4 (default)',
  softhsm: versionOf('softhsm2-util', ['--version']),
  java: token.javaConfig ? versionOf('java', ['-version']) : null,
  nodeWebcryptoP11: JSON.parse(readFileSync(join(HERE, '..', 'node_modules', 'node-webcrypto-p11', 'package.json'), 'utf8')).version,
  pkcs11js: JSON.parse(readFileSync(join(HERE, '..', 'node_modules', 'pkcs11js', 'package.json'), 'utf8')).version,
}
console.log(`\nSigning on SoftHSM ${meta.softhsm}, ${N} cores (${meta.cpu}), Node ${meta.node}, ${duration} s per cell${rounds > 1 ? `, median of ${rounds} interleaved rounds` : ''}; load average ${loadAtStart.toFixed(1)} at the start, ${meta.loadAverage.end.toFixed(1)} at the end.`)
console.log('÷dev: as a ratio to the device limit (raw pkcs11js, sync, one process per core).')
console.log(`÷peer: as a ratio to the best peer (most ops/s of raw async, node-webcrypto-p11, Java) at that concurrency (Java: 1 thread at 1, its best of ${N} and ${2 * N} threads above).`)
console.log('÷L: as a ratio to the JWT limit L = min(conc, cores) / (cores / device limit + c_jose), c_jose being jose\'s own CPU a JWT (the jose-cpu row).')
console.log('÷L1: one process through jose, as a ratio to L1, the JWT limit with the one-process limit (the raw-threads row) for the device limit.')
console.log('conc: calls in flight in one process; loop p99: event-loop delay while signing (in-process Node contenders).')
console.log('Latency ratios to a fixed-parallelism row (device limit, Java) compare queueing at conc with its 1-2 calls in flight.\n')
printTable(rows)

mkdirSync(dirname(jsonFile), { recursive: true })
writeFileSync(jsonFile, JSON.stringify({ meta, rows }, null, 2) + '\n')
console.log(`\nWrote ${jsonFile} (${meta.seconds.toFixed(0)} s in all).`)
if (flags.compare) printComparison(rows, flags.compare)

// JWE decrypts (issue #13): RSA-OAEP and ECDH-ES+A256KW through jose against the raw binding's
// device limit, in a process of their own, with this run's duration and concurrencies 1 and 16.
if (flags.alg === undefined || flags.jwe) {
  const jweConcurrencies = concurrencies.filter((c) => c === 1 || c === 16)
  const args = ['--duration', String(duration), '--warmup', String(warmup), '--json', jsonFile.replace(/(\.json)?$/, '-jwe.json')]
  if (jweConcurrencies.length > 0) args.push('--concurrency', jweConcurrencies.join(','))
  console.log('\nJWE decrypts (benchmarks/jwe.js):')
  const jwe = spawnSync(process.execPath, [join(HERE, 'jwe.js'), ...args], { stdio: 'inherit' })
  if (jwe.status !== 0) process.exitCode = 1
}
