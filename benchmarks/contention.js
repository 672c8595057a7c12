// node benchmarks/contention.js [--alg ES256] [--signers 2,3] [--rounds 3] [--duration 3] [--copies]
//
// How much one process's threads cost each other inside the module: the raw binding signs with
// synchronous calls, one session each, in N worker threads of one process and then in N processes,
// alternating, on one fresh SoftHSM token. Nothing else runs: no JavaScript around the calls, no
// dispatch. A ratio below 1 is the module's own locking, which every in-process library pays, Java's
// SunPKCS11 included. SoftHSM holds a mutex per token while it checks a token object's file; with
// --copies each signer signs with its own session copy of the key (as this library does on a
// software slot), which that check skips, and what is left is the module's process-wide locking
// (SoftHSM's registry of secure memory, a map under one mutex, updated at every allocation of key
// material). So --copies gives the most one process can sign, and threads ÷ processes its share of
// the device limit. For threads it also shows the voluntary context switches a signature: a thread
// that sleeps on a lock held by another.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { signingInput } from './lib/contender.js'
import { MECHANISMS, openRaw } from './lib/pkcs11.js'
import { childOf, runTogether } from './lib/processes.js'
import { runThreads, threadOf } from './lib/threads.js'
import { KEYS, createBenchToken } from './lib/token.js'
import { median } from './lib/measure.js'

const self = fileURLToPath(import.meta.url)

if (!threadOf(signer) && !childOf(signer)) await main()

async function main() {
  const { values: flags } = parseArgs({
    options: {
      alg: { type: 'string', default: 'ES256' },
      signers: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '3' },
      duration: { type: 'string', default: '3' },
      copies: { type: 'boolean', default: false },
    },
  })
  const { token, remove } = createBenchToken({ java: false })
  process.on('exit', remove)
  process.env.SOFTHSM2_CONF = token.conf
  const job = { token, alg: flags.alg, ms: Number(flags.duration) * 1000, copy: flags.copies }
  // This thread initializes the module and holds a logged-in session, as a library's main thread
  // does: threads that initialize at the same instant race, and the last session's close logs out.
  openRaw(token, KEYS[flags.alg].label)
  console.log(`${flags.alg}, raw sync C_SignInit + C_Sign${flags.copies ? ', each signer with a session copy of the key' : ''}, median of ${flags.rounds} alternating runs of ${flags.duration} s:`)
  for (const n of flags.signers.split(',').map(Number)) {
    const rows = { threads: [], processes: [], ratios: [], switches: [] }
    for (let round = 0; round < Number(flags.rounds); round++) {
      const threads = await runThreads(self, Array.from({ length: n }, () => job))
      const processes = await runTogether(self, Array.from({ length: n }, () => job))
      const rate = (results) => results.reduce((sum, r) => sum + r.ops, 0) / (job.ms / 1000)
      rows.threads.push(rate(threads))
      rows.processes.push(rate(processes))
      rows.ratios.push(rate(threads) / rate(processes))
      rows.switches.push(threads.reduce((sum, r) => sum + r.switches, 0) / threads.reduce((sum, r) => sum + r.ops, 0))
    }
    const round = (value) => Math.round(value).toLocaleString('en-US')
    console.log(`${n} signers: ${round(median(rows.threads))}/s in threads of one process, ${round(median(rows.processes))}/s in processes; ` +
      `threads ÷ processes ${median(rows.ratios).toFixed(2)} (${rows.ratios.map((r) => r.toFixed(2)).join(' ')}); ` +
      `${median(rows.switches).toFixed(2)} voluntary context switches a signature in threads`)
  }
}

/** Opens a session of its own and finds the key; returns what signs for `ms`. */
function signer({ token, alg, ms, copy }) {
  const { p11, firstSession: session, key } = openRaw(token, KEYS[alg].label, { copy })
  const { mechanism, input, length } = MECHANISMS[alg]
  const data = signingInput(alg)
  const signature = Buffer.alloc(length)
  const voluntarySwitches = () => Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))[1])
  return () => {
    const switchesBefore = voluntarySwitches()
    let ops = 0
    for (const end = performance.now() + ms; performance.now() < end; ops++) {
      p11.C_SignInit(session, mechanism, key)
      p11.C_Sign(session, input(data), signature)
    }
    const switches = voluntarySwitches() - switchesBefore
    // Leaves the module initialized: another thread of this process may still be signing. The copy goes with the session.
    p11.C_CloseSession(session)
    return { ops, switches }
  }
}
