// node benchmarks/large-inputs.js [--size MiB] [--concurrency N]: what large inputs cost in memory.
// RSS before, at its peak during N concurrent RS256 (and then PS256) signatures of SIZE MiB each
// through hsm.subtle.sign, right after them, and after 600 small signatures more (after a full
// garbage collection each time; the peak is sampled every 5 ms). Each signature is verified with
// Node's crypto. Defaults: 8 signatures of 64 MiB.
import { createPublicKey, verify } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { parseArgs } from 'node:util'
import { createBenchToken, KEYS } from './lib/token.js'

const { values } = parseArgs({ options: { size: { type: 'string', default: '64' }, concurrency: { type: 'string', default: '8' } } })
const SIZE = Number(values.size) * 2 ** 20
const CONCURRENCY = Number(values.concurrency)

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`
const rss = () => {
  gc()
  gc()
  return process.memoryUsage().rss
}

const { token, remove } = createBenchToken({ java: false })
process.on('exit', remove)
process.env.SOFTHSM2_CONF = token.conf
const { Pkcs11Crypto } = await import('../dist/index.js')
const hsm = await Pkcs11Crypto.open({ library: token.module, token: { label: token.label }, pin: token.pin })

const ALGORITHMS = [
  ['RS256', { name: 'RSASSA-PKCS1-v1_5' }, {}],
  ['PS256', { name: 'RSA-PSS', saltLength: 32 }, { padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }],
]
const small = new Uint8Array(200)
console.log(`${CONCURRENCY} concurrent signatures of ${mib(SIZE)} each, then 600 of 200 bytes; RSS after a full GC`)
for (const [alg, params, nodePadding] of ALGORITHMS) {
  const { privateKey, publicKey } = await hsm.keys.get({ label: KEYS[alg].label }, { algorithm: alg })
  const spki = createPublicKey({ key: Buffer.from(await crypto.subtle.exportKey('spki', publicKey)), format: 'der', type: 'spki' })
  await hsm.subtle.sign(params, privateKey, small) // workers and sessions up
  const baseline = rss()
  let peak = process.memoryUsage().rss
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss) }, 5)
  const inputs = Array.from({ length: CONCURRENCY }, (_, i) => new Uint8Array(SIZE).fill(i + 1))
  const withInputs = rss()
  const started = performance.now()
  const signatures = await Promise.all(inputs.map((input) => hsm.subtle.sign(params, privateKey, input)))
  const seconds = (performance.now() - started) / 1000
  clearInterval(sampler)
  const ok = signatures.every((signature, i) => verify('sha256', inputs[i], { key: spki, ...nodePadding }, Buffer.from(signature)))
  inputs.length = 0
  const afterLarge = rss()
  for (let i = 0; i < 600; i += 16) await Promise.all(Array.from({ length: 16 }, () => hsm.subtle.sign(params, privateKey, small)))
  const afterSmall = rss()
  console.log(`${alg}: baseline ${mib(baseline)}, with the inputs ${mib(withInputs)} (+${mib(withInputs - baseline)} of input), peak ${mib(peak)} `
    + `(+${mib(peak - withInputs)} over the inputs), after ${mib(afterLarge)}, after 600 small ${mib(afterSmall)}; ${seconds.toFixed(1)} s; Node verifies: ${ok}`)
}
await hsm.close()
