// "The device limit": the raw binding, synchronous C_Sign, one session per process, in as many
// processes as there are cores, all signing at once. Nothing in Node gets closer to the token's
// own speed. Run as a contender, this file forks itself N times with --child.
import { createHistogram } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { runContender, signingInput } from '../lib/contender.js'
import { combine, describe } from '../lib/measure.js'
import { MECHANISMS, openRaw } from '../lib/pkcs11.js'
import { childOf, runTogether } from '../lib/processes.js'
import { KEYS } from '../lib/token.js'

if (!childOf(worker)) {
  runContender(async (job) => ({
    async cell({ concurrency: processes, duration, warmup }) {
      const jobs = Array.from({ length: processes }, () => ({ ...job, duration, warmup }))
      return combine(await runTogether(fileURLToPath(import.meta.url), jobs))
    },
  }))
}

/** Opens the token and finds the key; returns what signs for the warm-up and the duration. */
function worker({ alg, token, duration, warmup }) {
  const raw = openRaw(token, KEYS[alg].label)
  const { mechanism, input, length } = MECHANISMS[alg]
  const data = signingInput(alg)
  const session = raw.firstSession
  const signature = Buffer.allocUnsafe(length)
  const signUntil = (until, latency) => {
    let ops = 0
    let errors = 0
    let errorSample
    while (performance.now() < until) {
      const t0 = process.hrtime.bigint()
      try {
        raw.p11.C_SignInit(session, mechanism, raw.key)
        raw.p11.C_Sign(session, input(data), signature)
        latency?.record(process.hrtime.bigint() - t0 || 1n)
        ops++
      } catch (error) {
        errors++
        errorSample ??= describe(error)
      }
    }
    return { ops, errors, errorSample }
  }
  return () => {
    signUntil(performance.now() + warmup * 1000)
    const latency = createHistogram()
    const start = performance.now()
    const { ops, errors, errorSample } = signUntil(start + duration * 1000, latency)
    const seconds = (performance.now() - start) / 1000
    raw.close()
    return {
      ops, seconds, opsPerSec: ops / seconds, errors, errorSample,
      p50Ms: latency.percentile(50) / 1e6, p99Ms: latency.percentile(99) / 1e6,
    }
  }
}
