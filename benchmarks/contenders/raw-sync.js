// "The device limit": the raw binding, synchronous C_Sign, one session per process, in as many
// processes as there are cores, all signing at once. Nothing in Node gets closer to the token's
// own speed. Run as a contender, this file forks itself N times with --child.
import { fileURLToPath } from 'node:url'
import { runContender } from '../lib/contender.js'
import { combine } from '../lib/measure.js'
import { childOf, runTogether } from '../lib/processes.js'
import { rawSigner } from '../lib/raw-signer.js'

if (!childOf(rawSigner)) {
  runContender(async (job) => ({
    async cell({ concurrency: processes, duration, warmup }) {
      const jobs = Array.from({ length: processes }, () => ({ ...job, duration, warmup }))
      return combine(await runTogether(fileURLToPath(import.meta.url), jobs))
    },
  }))
}
