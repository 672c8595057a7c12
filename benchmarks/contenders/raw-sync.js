// "The device limit": the raw binding, synchronous C_Sign, one session per process, in as many
// processes as there are cores, all signing at once. Nothing in Node gets closer to the token's
// own speed. Run as a contender, this file forks itself N times with --worker.
import { fork } from 'node:child_process'
import { createHistogram } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { runContender, signingInput } from '../lib/contender.js'
import { combine, describe } from '../lib/measure.js'
import { MECHANISMS, openRaw } from '../lib/pkcs11.js'
import { KEYS } from '../lib/token.js'

/** The child's next message; rejects if it exits first. */
function nextMessage(child) {
  return new Promise((resolve, reject) => {
    const exited = (code) => reject(new Error(`device-limit worker exited with ${code}`))
    child.once('exit', exited)
    child.once('message', (message) => {
      child.off('exit', exited)
      resolve(message)
    })
  })
}

if (process.argv[2] === '--worker') worker(JSON.parse(process.argv[3]))
else {
  runContender(async (job) => ({
    async cell({ concurrency: processes, duration, warmup }) {
      const workerJob = JSON.stringify({ ...job, duration, warmup })
      // One after another until each is ready (module loaded, logged in, key found): SoftHSM
      // processes that start on one token store at the same instant fail now and then
      // (C_GetTokenInfo: CKR_GENERAL_ERROR). Then all start signing together.
      const children = []
      for (let i = 0; i < processes; i++) {
        const child = fork(fileURLToPath(import.meta.url), ['--worker', workerJob])
        children.push(child)
        await nextMessage(child)
      }
      const replies = children.map(nextMessage)
      for (const child of children) child.send('go')
      const results = await Promise.all(replies)
      return combine(results)
    },
  }))
}

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
  process.send({ ready: true })
  process.once('message', () => {
    signUntil(performance.now() + warmup * 1000)
    const latency = createHistogram()
    const start = performance.now()
    const { ops, errors, errorSample } = signUntil(start + duration * 1000, latency)
    const seconds = (performance.now() - start) / 1000
    raw.close()
    process.send({
      ops, seconds, opsPerSec: ops / seconds, errors, errorSample,
      p50Ms: latency.percentile(50) / 1e6, p99Ms: latency.percentile(99) / 1e6,
    }, () => process.exit(0))
  })
}
