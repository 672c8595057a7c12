// Java's SunPKCS11 (JDK 17) with 1 and with N threads, through benchmarks/java/SignBench.java on
// the keytool-made keys (SunPKCS11 sees only private keys that have a certificate beside them).
// Each job's `concurrencies` are the thread counts; one JVM measures them all, one after another.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { NotAvailable, runContender, signingInput } from '../lib/contender.js'
import { KEYS } from '../lib/token.js'

const SIGN_BENCH = fileURLToPath(new URL('../java/SignBench.java', import.meta.url))

runContender(async ({ alg, token, concurrencies, duration, warmup }) => {
  if (!token.javaConfig) throw new NotAvailable('java or keytool not on PATH')
  if (!KEYS[alg].javaAlias) throw new NotAvailable(`SunPKCS11 in JDK 17 has no ${alg}`)
  const args = [SIGN_BENCH, token.javaConfig, token.pin, KEYS[alg].javaAlias, alg, concurrencies.join(','), String(duration), String(warmup), signingInput(alg).toString()]
  const { stdout } = await promisify(execFile)('java', args, { env: { ...process.env, SOFTHSM2_CONF: token.conf }, timeout: 600_000 })
  const lines = stdout.trim().split('\n').map((line) => JSON.parse(line))
  const byThreads = new Map(lines.map((r) => [r.threads, r]))
  return {
    cell: ({ concurrency }) => {
      const r = byThreads.get(concurrency)
      return { concurrency, ops: r.ops, seconds: r.seconds, opsPerSec: r.ops / r.seconds, p50Ms: r.p50Ms, p99Ms: r.p99Ms, errors: r.errors, ...(r.errorSample ? { errorSample: r.errorSample } : {}), loopP99Ms: null }
    },
  }
})
