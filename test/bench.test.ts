// The benchmark harness still runs and writes what its readers expect: a short run of the device
// limit and this project over two rounds, this project in one process per core, an A/B of the
// build against itself, the module's locking measured in threads against processes, and the CPU
// of each thread. Speed is not
// checked here (benchmarks check speed; tests check behaviour).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'bench-test-'))
const node = (args) => execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })

describe('the benchmark harness', () => {
  after(() => rmSync(dir, { recursive: true, force: true }))

  test('run.js --rounds 2: one row per cell, the median round, ratios to the device limit, JSON', () => {
    const json = join(dir, 'run.json')
    const out = node([
      'benchmarks/run.js',
      '--alg',
      'ES256',
      '--concurrency',
      '1,4',
      '--duration',
      '0.2',
      '--warmup',
      '0.05',
      '--rounds',
      '2',
      '--contenders',
      'raw-sync,ours-subtle',
      '--json',
      json,
    ])
    assert.match(out, /median of 2 interleaved rounds/)
    const { meta, rows } = JSON.parse(readFileSync(json, 'utf8'))
    assert.equal(meta.rounds, 2)
    assert.deepEqual(rows.map((r) => `${r.contender}@${r.concurrency}`).sort(), ['ours-subtle@1', 'ours-subtle@4', `raw-sync@${availableParallelism()}`])
    for (const row of rows) {
      assert.equal(row.na, undefined, `${row.contender}: ${row.na}`)
      assert.equal(row.opsPerSecByRound.length, 2)
      assert.ok(row.opsPerSecByRound.includes(row.opsPerSec), 'the figures are those of one of the rounds')
      assert.equal(row.errors, 0)
    }
    const ours = rows.find((r) => r.contender === 'ours-subtle' && r.concurrency === 4)
    assert.ok(ours.vsDevice.opsPerSec > 0 && ours.loopP99Ms > 0)
  })

  test('run.js ours-jose-cluster: one row for the whole concurrency, made by one process per core', () => {
    const json = join(dir, 'cluster.json')
    node(['benchmarks/run.js', '--alg', 'ES256', '--concurrency', '3', '--duration', '0.2', '--warmup', '0.05', '--contenders', 'ours-jose-cluster', '--json', json])
    const [row] = JSON.parse(readFileSync(json, 'utf8')).rows
    assert.equal(row.na, undefined, row.na)
    assert.equal(row.concurrency, 3)
    assert.equal(row.errors, 0)
    assert.ok(row.opsPerSec > 0 && row.p99Ms > 0 && row.loopP99Ms > 0)
  })

  test('run.js raw-threads: the one-process limit beside the device limit, and one process through jose against L1', () => {
    const json = join(dir, 'one-process.json')
    const out = node([
      'benchmarks/run.js',
      '--alg',
      'ES256',
      '--concurrency',
      String(availableParallelism()),
      '--duration',
      '0.2',
      '--warmup',
      '0.05',
      '--contenders',
      'raw-sync,raw-threads,ours-jose,jose-cpu',
      '--json',
      json,
    ])
    const { rows } = JSON.parse(readFileSync(json, 'utf8'))
    for (const row of rows) assert.equal(row.na, undefined, `${row.contender}: ${row.na}`)
    const threads = rows.find((r) => r.contender === 'raw-threads')
    assert.equal(threads.concurrency, availableParallelism())
    assert.equal(threads.errors, 0)
    assert.ok(threads.vsDevice.opsPerSec > 0)
    const ours = rows.find((r) => r.contender === 'ours-jose')
    assert.ok(ours.vsProcessJwtLimit.opsPerSec > 0 && ours.vsProcessJwtLimit.limit > 0)
    assert.match(out, /^ {2}in one process: L1 = [\d,]+\/s \(the one-process limit [\d,]+\/s, \d\.\d\d of the device limit\)$/m)
  })

  test("ab.js: the same build twice, each with ops/s, CPU a signature and the main thread's utilization", () => {
    const out = node(['benchmarks/ab.js', '--rounds', '1', '--duration', '0.2', 'dist', 'dist'])
    const lines = out.trim().split('\n')
    assert.match(lines[0], /^ES256 through jose at concurrency 16, median of 1 alternating runs/)
    assert.equal(lines.length, 3)
    for (const line of lines.slice(1)) assert.match(line, /dist: [\d,]+ ops\/s, \d+ µs CPU a signature, main-thread ELU \d\.\d\d/)
  })

  test('contention.js: threads of one process against processes, with their ratio', () => {
    const out = node(['benchmarks/contention.js', '--signers', '2', '--rounds', '1', '--duration', '0.2'])
    assert.match(
      out,
      /^2 signers: [\d,]+\/s in threads of one process, [\d,]+\/s in processes; threads ÷ processes \d\.\d\d \(\d\.\d\d\); \d+\.\d\d voluntary context switches a signature in threads$/m,
    )
  })

  test('contention.js --copies: each signer with a session copy of the key', () => {
    const out = node(['benchmarks/contention.js', '--signers', '2', '--rounds', '1', '--duration', '0.2', '--copies'])
    assert.match(out, /each signer with a session copy of the key/)
    assert.match(out, /^2 signers: [\d,]+\/s in threads of one process, [\d,]+\/s in processes; threads ÷ processes \d\.\d\d/m)
  })

  test('threads.js: the main thread and the signing workers, each with CPU and switches a signature', () => {
    const out = node(['benchmarks/threads.js', '--rounds', '1', '--duration', '0.3'])
    assert.match(out, /^[\d,]+\/s, \d+ µs a signature, \d\.\d\d cores \| main \d+ µs \d\.\d\d \d\.\d\d( \| .+ \d+ µs \d\.\d\d \d\.\d\d)+$/m)
  })
})
