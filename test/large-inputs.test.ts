// Large RSA inputs are hashed here and the token signs the digest (the same signature, which Node
// verifies): no copy of the input goes to the token, the signing memory does not grow for it, and
// memory is given back. Small inputs still go to the token's hash-and-sign mechanism. The
// mechanism used is read from OpenSC's pkcs11-spy log.
import assert from 'node:assert/strict'
import { createPublicKey, verify } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const TOKEN = 'large'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'rsa', '--id', '01'])
const SPY = ['/usr/lib/x86_64-linux-gnu/pkcs11-spy.so', '/usr/lib/aarch64-linux-gnu/pkcs11-spy.so'].find(existsSync)
const spyLog = join(softhsm.dir, 'spy.log')
process.env.PKCS11SPY = softhsm.module
process.env.PKCS11SPY_OUTPUT = spyLog
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')
const collect = () => {
  gc()
  gc()
}
const rss = () => {
  collect()
  return process.memoryUsage().rss
}
/**
 * Memory of ArrayBuffers and SharedArrayBuffers (every Buffer, the signing memory): what a copy of
 * an input would grow. Not the RSS, which moved by 62 MiB in one CI run with no copy made: it
 * counts the program's file pages too, which the host's reclaim (DAMON pageout here) takes away
 * and the next call brings back.
 */
const buffers = () => process.memoryUsage().arrayBuffers
const MiB = 2 ** 20

const hsm = await Pkcs11Crypto.open({ library: SPY ?? softhsm.module, token: { label: TOKEN }, pin: PIN })
after(() => hsm.close())

const ALGORITHMS = [
  ['RS256', { name: 'RSASSA-PKCS1-v1_5' }, {}, 'CKM_SHA256_RSA_PKCS', 'CKM_RSA_PKCS'],
  ['PS256', { name: 'RSA-PSS', saltLength: 32 }, { padding: 6, saltLength: 32 }, 'CKM_SHA256_RSA_PKCS_PSS', 'CKM_RSA_PKCS_PSS'],
]

/** The spy keeps its log open: what was logged since mark() is what a test reads. */
let mark = 0
const markLog = () => {
  mark = existsSync(spyLog) ? readFileSync(spyLog).length : 0
}
/** The mechanisms of the C_SignInit calls logged since markLog(). */
function signMechanisms() {
  return [
    ...readFileSync(spyLog)
      .subarray(mark)
      .toString()
      .matchAll(/C_SignInit[\s\S]*?pMechanism->type = (\w+)/g),
  ].map((m) => m[1])
}

describe('large RSA inputs', () => {
  for (const [alg, params, nodePadding, hashAndSign, raw] of ALGORITHMS) {
    test(`${alg}: 4 concurrent 32 MiB inputs are hashed here (${raw}), verified by Node; memory grows by no copy and is given back`, async () => {
      // @ts-expect-error TS2322 (converted from JavaScript): Type 'string | { name: string; } | { name?: undefined; } | { name: string; saltLength: number; padding?: un...
      const { privateKey, publicKey } = await hsm.keys.get({ label: 'rsa' }, { algorithm: alg })
      const spki = createPublicKey({ key: Buffer.from(await crypto.subtle.exportKey('spki', publicKey)), format: 'der', type: 'spki' })
      // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'string | { name: string; } | { name?: undefined; } | { name: string; saltLength: number; ...
      await hsm.subtle.sign(params, privateKey, new Uint8Array(100))
      const baseline = rss()
      let inputs = Array.from({ length: 4 }, (_, i) => new Uint8Array(32 * MiB).fill(i + 7))
      collect() // the peak below counts only what the signatures allocate
      const withInputs = buffers()
      let peak = withInputs
      const sampler = setInterval(() => {
        peak = Math.max(peak, buffers())
      }, 2)
      if (SPY) markLog()
      // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'string | { name: string; } | { name?: undefined; } | { name: string; saltLength: number; ...
      const signatures = await Promise.all(inputs.map((input) => hsm.subtle.sign(params, privateKey, input)))
      clearInterval(sampler)
      // @ts-expect-error TS2698 (converted from JavaScript): Spread types may only be created from object types.
      signatures.forEach((signature, i) => assert.equal(verify('sha256', inputs[i], { key: spki, ...nodePadding }, Buffer.from(signature)), true))
      if (SPY) assert.deepEqual(new Set(signMechanisms()), new Set([raw]))
      // A copy of the inputs would be 128 MiB more (and the signing memory grown to hold them, more again).
      assert.ok(peak - withInputs < 48 * MiB, `peak ${((peak - withInputs) / MiB).toFixed(0)} MiB over the inputs`)
      inputs = undefined
      assert.ok(rss() - baseline < 48 * MiB, 'memory given back')
      // Small inputs still go to the token's hash-and-sign mechanism.
      if (SPY) markLog()
      const message = new Uint8Array(1000).fill(3)
      // @ts-expect-error TS2698 (converted from JavaScript): Spread types may only be created from object types.
      assert.equal(verify('sha256', message, { key: spki, ...nodePadding }, Buffer.from(await hsm.subtle.sign(params, privateKey, message))), true)
      if (SPY) assert.deepEqual(signMechanisms(), [hashAndSign])
    })
  }
})

describe('inputs that are not a BufferSource', () => {
  test("a view on a SharedArrayBuffer is a TypeError, as Node's WebCrypto says (another thread could change it mid-signature)", async () => {
    const { privateKey } = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'RS256' })
    const shared = new Uint8Array(new SharedArrayBuffer(16))
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'Uint8Array<SharedArrayBuffer>' is not assignable to parameter of type 'BufferSource'.
    await assert.rejects(crypto.subtle.digest('SHA-256', shared), TypeError)
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'Uint8Array<SharedArrayBuffer>' is not assignable to parameter of type 'BufferSource'.
    await assert.rejects(hsm.subtle.sign('RSASSA-PKCS1-v1_5', privateKey, shared), (e) => e instanceof TypeError && /SharedArrayBuffer/.test(e.message))
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'DataView<SharedArrayBuffer>' is not assignable to parameter of type 'BufferSource'.
    await assert.rejects(hsm.subtle.sign('RSASSA-PKCS1-v1_5', privateKey, new DataView(new SharedArrayBuffer(8))), TypeError)
    assert.equal((await hsm.subtle.sign('RSASSA-PKCS1-v1_5', privateKey, new Uint8Array(16))).byteLength, 256)
  })
})
