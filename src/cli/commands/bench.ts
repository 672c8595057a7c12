/** `pkcs11-jwt bench`: signing throughput and latency of this token, through jose as an application signs. */
import { monitorEventLoopDelay, createHistogram, performance } from 'node:perf_hooks'
import type { Command } from 'commander'
import { UsageError } from '../errors.js'
import { addKeyOptions, checkAlgorithm, keyForAlgorithm, keySelector, type KeyFlags } from '../key-options.js'
import { printJson, printTable } from '../output.js'
import { addTokenOptions, parseIndex, withToken, type TokenFlags } from '../token-options.js'
import type { Pkcs11Crypto } from '../../index.js'
import type { CliIo } from '../io.js'

interface BenchFlags extends TokenFlags, KeyFlags {
  alg: string
  concurrency: number
  duration: number
  json?: boolean
}

export interface BenchResult {
  alg: string
  key: string
  concurrency: number
  seconds: number
  signatures: number
  errors: number
  opsPerSecond: number
  latencyMs: { p50: number; p99: number; max: number }
  eventLoopDelayP99Ms: number
}

export function register(program: Command, io: CliIo): void {
  addKeyOptions(addTokenOptions(program.command('bench')))
    .description('sign JWTs for a while at a given concurrency; prints ops/s and latency percentiles')
    .option('--alg <alg>', 'JOSE algorithm', 'ES256')
    .option('--concurrency <n>', 'signatures under way at once', parseIndex, 16)
    .option('--duration <seconds>', 'how long to sign', parseIndex, 5)
    .option('--json', 'print the result as JSON')
    .addHelpText(
      'after',
      '\nWith no --key, the first key on the token that can sign with --alg is used.\n\nExample:\n  $ pkcs11-jwt bench --alg RS256 --concurrency 16 --duration 10\n',
    )
    .action(async (flags: BenchFlags) => {
      checkAlgorithm(flags.alg)
      if (flags.concurrency < 1 || flags.duration < 1) throw new UsageError('--concurrency and --duration must be at least 1')
      await withToken(flags, io, async (hsm) => {
        const selector = keySelector(flags, false) ?? (await firstKeyFor(hsm, flags.alg))
        const { key } = await keyForAlgorithm(hsm, selector, flags.alg)
        const uninstall = hsm.installGlobal()
        try {
          const result = await measure(flags, key.privateKey, key.label || key.id, io.stderr.isTTY ? io.stderr : undefined)
          if (flags.json) return printJson(io.stdout, result)
          printTable(
            io.stdout,
            ['ALG', 'KEY', 'CONCURRENCY', 'OPS/S', 'P50 MS', 'P99 MS', 'ERRORS', 'LOOP P99 MS'],
            [
              [
                result.alg,
                result.key,
                String(result.concurrency),
                result.opsPerSecond.toFixed(0),
                result.latencyMs.p50.toFixed(2),
                result.latencyMs.p99.toFixed(2),
                String(result.errors),
                result.eventLoopDelayP99Ms.toFixed(2),
              ],
            ],
          )
        } finally {
          uninstall()
        }
      })
    })
}

async function firstKeyFor(hsm: Pkcs11Crypto, alg: string): Promise<{ id: string }> {
  const key = (await hsm.keys.list()).find((k) => k.algorithms.includes(alg))
  if (!key) throw new UsageError(`no key on the token can sign ${alg}; make one with: pkcs11-jwt keygen --alg ${alg} --label NAME`)
  return { id: key.id }
}

/** Keeps `concurrency` JWT signatures under way for `duration` seconds. */
async function measure(flags: BenchFlags, key: CryptoKey, name: string, live: CliIo['stderr'] | undefined): Promise<BenchResult> {
  const { SignJWT } = await import('jose')
  const latency = createHistogram()
  const loop = monitorEventLoopDelay({ resolution: 1 })
  let signatures = 0
  let errors = 0
  const start = performance.now()
  const end = start + flags.duration * 1000
  const progress = live
    ? setInterval(() => {
        const seconds = (performance.now() - start) / 1000
        live.write(`\r${flags.alg}: ${signatures} signatures, ${(signatures / seconds).toFixed(0)}/s, ${errors} errors `)
      }, 250)
    : undefined
  loop.enable()
  const worker = async () => {
    while (performance.now() < end) {
      const t0 = performance.now()
      try {
        await new SignJWT({ sub: 'bench', n: signatures }).setProtectedHeader({ alg: flags.alg }).setIssuedAt().sign(key)
        signatures++
        latency.record(Math.max(1, Math.round((performance.now() - t0) * 1000)))
      } catch {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: flags.concurrency }, worker))
  loop.disable()
  clearInterval(progress)
  live?.write('\r\x1b[K')
  const seconds = (performance.now() - start) / 1000
  return {
    alg: flags.alg,
    key: name,
    concurrency: flags.concurrency,
    seconds,
    signatures,
    errors,
    opsPerSecond: signatures / seconds,
    latencyMs: { p50: latency.percentile(50) / 1000, p99: latency.percentile(99) / 1000, max: latency.max / 1000 },
    eventLoopDelayP99Ms: loop.percentile(99) / 1e6,
  }
}
