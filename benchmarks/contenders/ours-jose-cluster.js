// This project as a service scales it on a multi-core machine: one process per core (Node's
// cluster module does this for a server), each with unmodified jose SignJWT via installGlobal()
// and its signatures made in place on its main thread (inPlace: 'always', maxSessions: 3: a session
// for lookups, one in place, one for a worker that takes what cannot run in place), the concurrency
// shared among them. Each process has its own load of the module, so no process's signing waits on
// another's lock inside the module, and no signature pays a hand-over between threads.
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { runContender } from '../lib/contender.js'
import { combine, measure } from '../lib/measure.js'
import { CLUSTER_OPTIONS, openOurs } from '../lib/ours.js'
import { childOf, runTogether } from '../lib/processes.js'

const PROCESSES = availableParallelism()

if (!childOf(signer)) {
  runContender(async (job) => ({
    async cell({ concurrency, duration, warmup }) {
      const processes = Math.min(PROCESSES, concurrency)
      // Calls in flight per process: the concurrency spread as evenly as it divides.
      const jobs = Array.from({ length: processes }, (_, i) => ({
        ...job, duration, warmup, concurrency: Math.floor(concurrency / processes) + (i < concurrency % processes ? 1 : 0),
      }))
      const results = await runTogether(fileURLToPath(import.meta.url), jobs)
      const loopP99 = results.map((r) => r.loopP99Ms).filter((p) => p !== null)
      return { ...combine(results), concurrency, loopP99Ms: loopP99.length ? Math.max(...loopP99) : null }
    },
  }))
}

/** Opens the token in this process; returns what measures its share of the cell. */
async function signer({ alg, token, concurrency, duration, warmup }) {
  const ours = await openOurs({ alg, token, via: 'jose', options: CLUSTER_OPTIONS })
  await ours.sign() // the first signature starts the signing worker
  return async () => {
    const result = await measure({ op: ours.sign, concurrency, duration, warmup })
    await ours.close()
    return result
  }
}
