// node benchmarks/memory.js [--concurrency 16] [--in-place alone|always|never]: does signing leak?
// RSS after 10,000 and after 200,000 ES256 signatures through hsm.subtle.sign (after a full garbage
// collection each time), and the sessions open before and after: they must not grow. Exit status 1
// when the sessions grew. At concurrency 1 the signatures are made in place (the default 'auto').
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { createBenchToken, KEYS } from './lib/token.js'
import { signingInput } from './lib/contender.js'

const { values: flags } = parseArgs({ options: { concurrency: { type: 'string', default: '16' }, 'in-place': { type: 'string', default: 'auto' } } })
const CONCURRENCY = Number(flags.concurrency)
if (!Number.isInteger(CONCURRENCY) || CONCURRENCY < 1) {
  console.error('memory: --concurrency takes a positive integer')
  process.exit(2)
}
const FIRST = 10_000
const TOTAL = 200_000

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
const mb = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MB`
/** Memory after a full collection: RSS, and the V8 heap and Buffers within it. */
const memory = () => {
  gc()
  gc()
  return process.memoryUsage()
}

const { token, remove } = createBenchToken({ java: false })
process.on('exit', remove)
process.env.SOFTHSM2_CONF = token.conf
const { Pkcs11Crypto } = await import('../dist/index.js')
const hsm = await Pkcs11Crypto.open({ library: token.module, token: { label: token.label }, pin: token.pin, inPlace: flags['in-place'] })
const { privateKey } = await hsm.keys.get({ label: KEYS.ES256.label }, { algorithm: 'ES256' })
const data = signingInput('ES256')

let signed = 0
/** Signs until `count` signatures are done in all, `CONCURRENCY` at a time. */
async function signUpTo(count) {
  const worker = async () => {
    while (signed < count) {
      signed++
      await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
}

const sessionsBefore = hsm.openSessions
const start = performance.now()
await signUpTo(FIRST)
const first = memory()
const sessionsFirst = hsm.openSessions
await signUpTo(TOTAL)
const total = memory()
const sessionsAfter = hsm.openSessions
const seconds = (performance.now() - start) / 1000
await hsm.close()

console.log(`ES256 through hsm.subtle.sign, concurrency ${CONCURRENCY}, inPlace '${flags['in-place']}', ${TOTAL.toLocaleString('en-US')} signatures in ${seconds.toFixed(1)} s`)
const row = (label, m) => console.log(`${label.padEnd(17)} RSS ${mb(m.rss)}, V8 heap used ${mb(m.heapUsed)}, ArrayBuffers ${mb(m.arrayBuffers)}`)
row(`after ${FIRST.toLocaleString('en-US')}:`, first)
row(`after ${TOTAL.toLocaleString('en-US')}:`, total)
const grew = total.rss - first.rss
console.log(`RSS difference:   ${grew >= 0 ? '+' : '-'}${mb(Math.abs(grew))} (${(grew / (TOTAL - FIRST)).toFixed(1)} bytes per signature); heap ${total.heapUsed >= first.heapUsed ? '+' : '-'}${mb(Math.abs(total.heapUsed - first.heapUsed))}`)
console.log(`open sessions: ${sessionsBefore} before signing, ${sessionsFirst} after ${FIRST.toLocaleString('en-US')}, ${sessionsAfter} after ${TOTAL.toLocaleString('en-US')}`)
if (sessionsAfter > sessionsFirst) {
  console.log('FAIL: open sessions grew')
  process.exitCode = 1
}
