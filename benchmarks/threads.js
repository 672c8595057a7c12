// node benchmarks/threads.js [--alg ES256] [--via jose|subtle] [--concurrency 16] [--rounds 3] [--duration 3] [--max-sessions N]
//
// Where the CPU goes while this project signs at full speed, thread by thread (Linux /proc): the
// main thread (jose, routing, the software digest, the hand-over), each other thread that used
// more than 1% of a core (the signing workers), and the cores used in all. Per signature: CPU µs,
// and voluntary context switches (a thread that went to sleep: waiting for work, or for a lock
// inside the module). A figure such as "ours costs N µs a token on the main thread" comes from here.
import { readFileSync, readdirSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { openOurs } from './lib/ours.js'
import { createBenchToken } from './lib/token.js'

const { values: flags } = parseArgs({
  options: {
    alg: { type: 'string', default: 'ES256' },
    via: { type: 'string', default: 'jose' },
    concurrency: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '3' },
    'max-sessions': { type: 'string' },
  },
})
const TICKS_PER_SECOND = 100 // USER_HZ, as /proc counts

/** Each thread of this process: its name, CPU ms so far, and voluntary context switches so far. */
function threads() {
  return new Map(readdirSync('/proc/self/task').map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8')
    return [tid, {
      name: tid === String(process.pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
      cpuMs: (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND,
      switches: Number(/\nvoluntary_ctxt_switches:\s+(\d+)/.exec(status)[1]),
    }]
  }))
}

async function signFor(sign, ms) {
  let ops = 0
  const until = performance.now() + ms
  await Promise.all(Array.from({ length: Number(flags.concurrency) }, async () => {
    for (; performance.now() < until; ops++) await sign()
  }))
  return ops
}

const { token, remove } = createBenchToken({ java: false })
process.on('exit', remove)
process.env.SOFTHSM2_CONF = token.conf
const ours = await openOurs({ alg: flags.alg, token, via: flags.via, options: { maxSessions: flags['max-sessions'] && Number(flags['max-sessions']) } })
await signFor(ours.sign, 500)
console.log(`${flags.alg} through ${flags.via} at concurrency ${flags.concurrency}, ${flags.duration} s a round; per thread: CPU µs a signature, share of a core, voluntary switches a signature`)
for (let round = 0; round < Number(flags.rounds); round++) {
  const before = threads()
  const start = performance.now()
  const ops = await signFor(ours.sign, Number(flags.duration) * 1000)
  const ms = performance.now() - start
  let totalMs = 0
  const shown = []
  for (const [tid, now] of threads()) {
    const cpuMs = now.cpuMs - (before.get(tid)?.cpuMs ?? 0)
    totalMs += cpuMs
    if (now.name !== 'main' && cpuMs < ms * 0.01) continue
    const switches = (now.switches - (before.get(tid)?.switches ?? 0)) / ops
    shown.push(`${now.name} ${Math.round(cpuMs * 1000 / ops)} µs ${(cpuMs / ms).toFixed(2)} ${switches.toFixed(2)}`)
  }
  console.log(`${Math.round(ops / ms * 1000).toLocaleString('en-US')}/s, ${Math.round(totalMs * 1000 / ops)} µs a signature, ${(totalMs / ms).toFixed(2)} cores | ${shown.join(' | ')}`)
}
await ours.close()
