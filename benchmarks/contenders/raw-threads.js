// "The one-process limit": the raw binding, synchronous C_Sign, in as many threads of one process
// as there are cores, each on a session of its own with its own session copy of the key (as this
// library signs on a software slot), all signing at once. The module's process-wide locking
// (SoftHSM: its registry of secure memory, one mutex taken at each allocation of key material) is
// what keeps it below the device limit, which it shows as ÷dev; ours-jose in one process is also
// shown against it (÷L1).
import { fileURLToPath } from 'node:url'
import { runContender } from '../lib/contender.js'
import { combine } from '../lib/measure.js'
import { openRaw } from '../lib/pkcs11.js'
import { rawSigner } from '../lib/raw-signer.js'
import { runThreads, threadOf } from '../lib/threads.js'
import { KEYS } from '../lib/token.js'

if (!threadOf((job) => rawSigner({ ...job, copy: true }))) {
  runContender(async (job) => {
    const main = openRaw(job.token, KEYS[job.alg].label)
    return {
      async cell({ concurrency: threads, duration, warmup }) {
        const jobs = Array.from({ length: threads }, () => ({ ...job, duration, warmup }))
        return combine(await runThreads(fileURLToPath(import.meta.url), jobs))
      },
      close: () => main.close(),
    }
  })
}
