// Signing speed on a TPM 2.0 token: tpm2-pkcs11 over a software TPM made from nothing (the test
// suite's test/helpers/tpm.ts, hence tsx), ES256 with a key tpm2_ptool made. Raw pkcs11js
// synchronous C_SignInit + C_Sign in one thread (the device limit of one process), this project
// through hsm.subtle.sign at concurrency 1, 4 and 16, and a process per core (maxSessions 3,
// inPlace 'always', 8 in flight each) as README's cluster advice runs it. Each contender runs in a
// child process of its own.
//
//   node --import tsx benchmarks/tpm.js [--duration 5]
import { fork } from 'node:child_process'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { measure } from './lib/measure.js'
import { CLUSTER_OPTIONS } from './lib/ours.js'

const args = process.argv.slice(2)
const duration = Number(args[args.indexOf('--duration') + 1] || 5)
const role = process.env.P11WC_TPM_ROLE
const PIN = '1234'

/** Ops a second of `signOnce` at `concurrency`, after half a second of warm-up. */
async function rate(signOnce, concurrency) {
  return (await measure({ op: signOnce, concurrency, duration, warmup: 0.5 })).opsPerSec
}

async function child() {
  const { library } = JSON.parse(process.env.P11WC_TPM)
  const data = Buffer.from('a JWT signing input, about this long: eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9')
  if (role === 'raw') {
    const pkcs11js = createRequire(import.meta.url)('pkcs11js')
    const native = new pkcs11js.PKCS11()
    native.load(library)
    native.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
    const [slot] = native.C_GetSlotList(true)
    const session = native.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    native.C_Login(session, pkcs11js.CKU_USER, PIN)
    native.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: 'bench-ec' }])
    const [key] = native.C_FindObjects(session, 1)
    native.C_FindObjectsFinal(session)
    const { createHash } = await import('node:crypto')
    const out = Buffer.alloc(64)
    const opsPerSecond = await rate(async () => {
      native.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key)
      native.C_Sign(session, createHash('sha256').update(data).digest(), out)
    }, 1)
    native.C_Finalize()
    return opsPerSecond
  }
  const { Pkcs11Crypto } = await import('../dist/index.js')
  const concurrency = Number(process.env.P11WC_TPM_CONCURRENCY)
  const hsm = await Pkcs11Crypto.open({ library, token: { label: 'tpm' }, pin: PIN, ...(role === 'cluster' && CLUSTER_OPTIONS) })
  try {
    const { privateKey } = await hsm.keys.get({ label: 'bench-ec' })
    return await rate(() => hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data), concurrency)
  } finally {
    await hsm.close()
  }
}

function run(roleName, concurrency, env) {
  return new Promise((resolve, reject) => {
    const worker = fork(new URL(import.meta.url).pathname, args, { env: { ...process.env, ...env, P11WC_TPM_ROLE: roleName, P11WC_TPM_CONCURRENCY: String(concurrency) } })
    worker.on('message', resolve)
    worker.on('exit', (code) => code && reject(new Error(`${roleName} exited ${code}`)))
  })
}

if (role) {
  process.send(await child())
} else {
  const { startTpm } = await import('../test/helpers/tpm.ts')
  const tpm = await startTpm()
  try {
    tpm.addToken('tpm', PIN)
    tpm.addKey('tpm', PIN, { label: 'bench-ec', id: 'b1', algorithm: 'ecc256' })
    const env = { P11WC_TPM: JSON.stringify({ library: tpm.module }) }
    const rows = [['raw pkcs11js sync, 1 thread', await run('raw', 1, env)]]
    for (const c of [1, 4, 16]) rows.push([`ours, hsm.subtle.sign, concurrency ${c}`, await run('ours', c, env)])
    const cores = availableParallelism()
    const members = await Promise.all(Array.from({ length: cores }, () => run('cluster', 8, env)))
    rows.push([`ours, a process per core (${cores}, ${JSON.stringify(CLUSTER_OPTIONS)}, 8 in flight each)`, members.reduce((a, b) => a + b, 0)])
    const raw = rows[0][1]
    console.log('| ES256 on tpm2-pkcs11 + swtpm | ops/s | ÷ raw |\n| --- | --- | --- |')
    for (const [name, ops] of rows) console.log(`| ${name} | ${ops.toFixed(0)} | ${(ops / raw).toFixed(2)} |`)
  } finally {
    await tpm.stop()
  }
}
