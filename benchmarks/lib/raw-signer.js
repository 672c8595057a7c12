// The raw binding signing as fast as it can on one session: what the device-limit contenders run,
// in a process of its own (raw-sync) or in a thread of a process (raw-threads).
import { createHistogram } from 'node:perf_hooks'
import { isMainThread } from 'node:worker_threads'
import { signingInput } from './contender.js'
import { describe } from './measure.js'
import { MECHANISMS, openRaw } from './pkcs11.js'
import { KEYS } from './token.js'

/**
 * Opens the token and finds the key (with `copy`, a session copy of it to sign with, as this
 * library does on a software slot); returns what signs for the warm-up and the duration and then
 * closes. In a worker thread only its session is closed: the process's main thread holds the
 * module initialized and logged in.
 */
export function rawSigner({ alg, token, duration, warmup, copy = false }) {
  const raw = openRaw(token, KEYS[alg].label, { copy })
  const { mechanism, input, length } = MECHANISMS[alg]
  const data = signingInput(alg)
  const session = raw.firstSession
  const key = raw.key
  const signature = Buffer.allocUnsafe(length)
  const signUntil = (until, latency) => {
    let ops = 0
    let errors = 0
    let errorSample
    while (performance.now() < until) {
      const t0 = process.hrtime.bigint()
      try {
        raw.p11.C_SignInit(session, mechanism, key)
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
    // The copy goes with its session.
    if (isMainThread) raw.close()
    else raw.p11.C_CloseSession(session)
    return {
      ops, seconds, opsPerSec: ops / seconds, errors, errorSample,
      p50Ms: latency.percentile(50) / 1e6, p99Ms: latency.percentile(99) / 1e6,
    }
  }
}
