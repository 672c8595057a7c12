// node benchmarks/jwe.js [--duration 2] [--warmup 0.5] [--concurrency 1,16] [--json FILE]
//
// JWE decryption on one fresh SoftHSM token: RSA-OAEP (A256GCM) and ECDH-ES+A256KW (P-256, A256GCM)
// through unmodified jose `compactDecrypt` with token keys (hsm.installGlobal()), against the device
// limit: the raw binding's synchronous C_Decrypt (OAEP, SHA-1) or C_DeriveKey (ECDH1, CKD_NULL,
// then the value read and the object destroyed, as any user must) in one process per core, and
// beside jose with a software key of Node's (what jose itself costs: on 2 cores it caps ECDH-ES).
import { availableParallelism } from 'node:os'
import { fileURLToPath } from 'node:url'
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import pkcs11js from 'pkcs11js'
import { combine, describe, measure } from './lib/measure.js'
import { openRaw } from './lib/pkcs11.js'
import { childOf, runTogether } from './lib/processes.js'
import { createBenchToken } from './lib/token.js'

const HERE = fileURLToPath(import.meta.url)
const N = availableParallelism()
const DIST = new URL('../dist/index.js', import.meta.url).href
const C = pkcs11js
const SECRET = [
  { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
  { type: C.CKA_TOKEN, value: false }, { type: C.CKA_SENSITIVE, value: false }, { type: C.CKA_EXTRACTABLE, value: true },
]
const CASES = {
  'RSA-OAEP': { label: 'jwe-oaep', alg: 'RSA-OAEP' },
  'ECDH-ES+A256KW': { label: 'jwe-p256', alg: 'ECDH-ES+A256KW' },
}

/** The device limit in one process: sync calls on one session for `duration` seconds. */
function rawWorker({ token, alg, jwe, duration, warmup }) {
  const raw = openRaw(token, CASES[alg].label)
  const session = raw.firstSession
  const header = JSON.parse(Buffer.from(jwe.split('.')[0], 'base64url'))
  const encryptedKey = Buffer.from(jwe.split('.')[1], 'base64url')
  const out = Buffer.alloc(256)
  const once = alg === 'RSA-OAEP'
    ? () => {
        raw.p11.C_DecryptInit(session, { mechanism: C.CKM_RSA_PKCS_OAEP, parameter: { type: C.CK_PARAMS_RSA_OAEP, hashAlg: C.CKM_SHA_1, mgf: C.CKG_MGF1_SHA1, source: 1 } }, raw.key)
        raw.p11.C_Decrypt(session, encryptedKey, out)
      }
    : (() => {
        const point = Buffer.concat([Buffer.from([4]), Buffer.from(header.epk.x, 'base64url'), Buffer.from(header.epk.y, 'base64url')])
        const mechanism = { mechanism: C.CKM_ECDH1_DERIVE, parameter: { type: C.CK_PARAMS_EC_DH, kdf: C.CKD_NULL, publicData: point } }
        return () => {
          const secret = raw.p11.C_DeriveKey(session, mechanism, raw.key, SECRET)
          raw.p11.C_GetAttributeValue(session, secret, [{ type: C.CKA_VALUE }])
          raw.p11.C_DestroyObject(session, secret)
        }
      })()
  const runUntil = (until) => {
    let ops = 0
    while (performance.now() < until) { once(); ops++ }
    return ops
  }
  return () => {
    runUntil(performance.now() + warmup * 1000)
    const start = performance.now()
    const ops = runUntil(start + duration * 1000)
    const seconds = (performance.now() - start) / 1000
    raw.close()
    return { ops, seconds, opsPerSec: ops / seconds, errors: 0 }
  }
}

/** This project in one process: jose compactDecrypt with the token key, at each concurrency. */
async function oursWorker({ token, alg, jwe, duration, warmup, concurrencies }) {
  const { Pkcs11Crypto } = await import(DIST)
  const { compactDecrypt } = await import('jose')
  const hsm = await Pkcs11Crypto.open({ library: token.module, token: { label: token.label }, pin: token.pin })
  const { privateKey } = await hsm.keys.get({ label: CASES[alg].label }, { algorithm: alg })
  const uninstall = hsm.installGlobal()
  await compactDecrypt(jwe, privateKey)
  return async () => {
    const results = []
    for (const concurrency of concurrencies) results.push(await measure({ op: () => compactDecrypt(jwe, privateKey), concurrency, duration, warmup }))
    uninstall()
    await hsm.close()
    return results
  }
}

/** The reference: jose with a software key of Node's, same JWE shape: what jose itself costs. */
async function softwareWorker({ alg, duration, warmup, concurrencies }) {
  const { CompactEncrypt, compactDecrypt } = await import('jose')
  const { subtle } = globalThis.crypto
  const pair = alg === 'RSA-OAEP'
    ? await subtle.generateKey({ name: 'RSA-OAEP', hash: 'SHA-1', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, false, ['encrypt', 'decrypt'])
    : await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])
  const jwe = await new CompactEncrypt(new TextEncoder().encode('{"sub":"alice"}')).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(pair.publicKey)
  return async () => {
    const results = []
    for (const concurrency of concurrencies) results.push(await measure({ op: () => compactDecrypt(jwe, pair.privateKey), concurrency, duration, warmup }))
    return results
  }
}

const WORKERS = { raw: rawWorker, ours: oursWorker, software: softwareWorker }
const child = childOf((job) => WORKERS[job.kind](job))

if (!child) {
  const { values: flags } = parseArgs({ options: { duration: { type: 'string' }, warmup: { type: 'string' }, concurrency: { type: 'string' }, json: { type: 'string' } } })
  const duration = Number(flags.duration ?? 2)
  const warmup = Number(flags.warmup ?? 0.5)
  const concurrencies = (flags.concurrency ?? '1,16').split(',').map(Number)
  const { token, remove } = createBenchToken({ java: false })
  process.env.SOFTHSM2_CONF = token.conf // for this process and the ones it forks
  try {
    const { Pkcs11Crypto } = await import(DIST)
    const { CompactEncrypt } = await import('jose')
    const hsm = await Pkcs11Crypto.open({ library: token.module, token: { label: token.label }, pin: token.pin })
    const jwes = {}
    for (const [alg, { label }] of Object.entries(CASES)) {
      const { publicKey } = await hsm.keys.generate({ algorithm: alg, label })
      jwes[alg] = await new CompactEncrypt(new TextEncoder().encode('{"sub":"alice"}')).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(publicKey)
    }
    await hsm.close()
    const table = []
    for (const alg of Object.keys(CASES)) {
      const job = { token, alg, jwe: jwes[alg], duration, warmup }
      const device = combine(await runTogether(HERE, Array.from({ length: N }, () => ({ ...job, kind: 'raw' }))))
      const [ours] = await runTogether(HERE, [{ ...job, kind: 'ours', concurrencies }])
      const [software] = await runTogether(HERE, [{ ...job, kind: 'software', concurrencies }])
      for (const [i, cell] of ours.entries()) {
        table.push({ alg, concurrency: cell.concurrency, opsPerSec: Math.round(cell.opsPerSec), deviceLimit: Math.round(device.opsPerSec),
          ofDevice: Number((cell.opsPerSec / device.opsPerSec).toFixed(2)), joseSoftware: Math.round(software[i].opsPerSec), p99Ms: Number(cell.p99Ms?.toFixed(2)), loopP99Ms: cell.loopP99Ms, errors: cell.errors, ...(cell.errorSample ? { errorSample: cell.errorSample } : {}) })
      }
    }
    console.log(`JWE decryption through jose with token keys vs the device limit (${N} processes, raw pkcs11js sync), SoftHSM, ${duration} s a cell`)
    console.table(table)
    if (flags.json) writeFileSync(flags.json, JSON.stringify({ date: new Date().toISOString(), cores: N, duration, table }, null, 2))
  } catch (error) {
    console.error(describe(error))
    process.exitCode = 1
  } finally {
    remove()
  }
}
