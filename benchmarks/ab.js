// node benchmarks/ab.js [--alg ES256] [--via jose|subtle] [--concurrency 16] [--rounds 5] [--duration 2] [--in-place always] DIST_A DIST_B [...]
//
// Compares builds of this library in the same minutes: child processes alternate A, B, A, B, ... on
// one SoftHSM token, and each build shows its median ops/s, the process's CPU time per signature
// (all threads) and the main thread's event-loop utilization. A DIST is a built dist/ folder whose
// package can resolve pkcs11js and jose, e.g. another revision:
//   git worktree add /tmp/old HEAD~3 && ln -s "$PWD/node_modules" /tmp/old/ && (cd /tmp/old && npx tsc -p .)
//   node benchmarks/ab.js /tmp/old/dist dist
import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { measure, median } from './lib/measure.js'
import { CLUSTER_OPTIONS, openOurs } from './lib/ours.js'
import { createBenchToken } from './lib/token.js'

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    alg: { type: 'string', default: 'ES256' },
    via: { type: 'string', default: 'jose' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '5' },
    duration: { type: 'string', default: '2' },
    'in-place': { type: 'string' },
    child: { type: 'string' },
  },
})

if (flags.child) await child(JSON.parse(flags.child))
else await parent()

async function parent() {
  if (positionals.length < 2) {
    console.error('usage: node benchmarks/ab.js [--alg ES256] [--via jose|subtle] [--concurrency 16] [--rounds 5] [--duration 2] [--in-place always] DIST_A DIST_B [...]')
    process.exit(2)
  }
  const { token, remove } = createBenchToken({ java: false })
  process.on('exit', remove)
  const builds = positionals.map((dist) => ({ dist: resolve(dist), runs: [] }))
  for (let round = 0; round < Number(flags.rounds); round++) {
    for (const build of builds) {
      const job = { dist: build.dist, token, alg: flags.alg, via: flags.via, concurrency: Number(flags.concurrency), duration: Number(flags.duration), inPlace: flags['in-place'] }
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(job)], {
        env: { ...process.env, SOFTHSM2_CONF: token.conf }, encoding: 'utf8',
      })
      build.runs.push(JSON.parse(out))
    }
  }
  console.log(`${flags.alg} through ${flags.via} at concurrency ${flags.concurrency}, median of ${flags.rounds} alternating runs of ${flags.duration} s:`)
  for (const { dist, runs } of builds) {
    console.log(`${dist}: ${Math.round(median(runs.map((r) => r.opsPerSec))).toLocaleString('en-US')} ops/s, ` +
      `${Math.round(median(runs.map((r) => r.cpuMicros)))} µs CPU a signature, main-thread ELU ${median(runs.map((r) => r.elu)).toFixed(2)} ` +
      `(runs: ${runs.map((r) => Math.round(r.opsPerSec)).join(' ')})`)
  }
}

async function child({ dist, token, alg, via, concurrency, duration, inPlace }) {
  // --in-place always: one process as a process per core runs it (its whole cost on one core), with the session that takes.
  const options = inPlace === 'always' ? CLUSTER_OPTIONS : inPlace && { inPlace }
  const ours = await openOurs({ alg, token, via, options, dist: pathToFileURL(`${dist}/`).href })
  const { opsPerSec, cpuMicrosPerOp, loopUtilization } = await measure({ op: ours.sign, concurrency, duration, warmup: 0.5 })
  await ours.close()
  process.stdout.write(JSON.stringify({ opsPerSec, cpuMicros: cpuMicrosPerOp, elu: loopUtilization }))
}
