// Issue #13, safety: whoever sends us a JWE controls the ciphertext, the wrapped key, the tag and
// the peer's point. A stream of inputs the token refuses (SoftHSM 2.6.1: CKR_GENERAL_ERROR for all
// of them) is answered with one OperationError each and makes no reconnection, no new session
// and no new C_Initialize, while other callers sign on; a device that really fails mid-burst still
// recovers, as signing does. Through the fault-injecting module over SoftHSM, which counts calls.
import assert from 'node:assert/strict'
import { randomBytes, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm } from './helpers/softhsm.js'
import { buildFaultModule, FaultControl } from './helpers/fault.js'

const LABEL = 'safety'
const PIN = '246813'
const softhsm = freshSoftHsm()
softhsm.initToken(LABEL, PIN)
const control = new FaultControl()
Object.assign(process.env, control.env) // before the fault module is first loaded
const faultModule = buildFaultModule()
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle
const REJECTED = 'the operation failed for an operation-specific reason'
const broken = (bytes) => {
  const b = Buffer.from(bytes)
  b[b.length >> 1] ^= 1
  return b
}

describe('refused inputs and failing devices', () => {
  let hsm, oaep, signer, gcm, kw, x25519, inputs
  before(async () => {
    control.reset()
    hsm = await Pkcs11Crypto.open({ library: faultModule, token: { label: LABEL }, pin: PIN, timeout: 5000 })
    oaep = await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'oaep' })
    signer = await hsm.keys.generate({ algorithm: 'ES256', label: 'signer' })
    x25519 = await hsm.keys.generate({ algorithm: 'ECDH-ES', namedCurve: 'X25519', label: 'x' })
    gcm = await hsm.subtle.importKey('raw', randomBytes(16), 'AES-GCM', false, ['encrypt', 'decrypt'])
    kw = await hsm.subtle.importKey('raw', randomBytes(16), 'AES-KW', false, ['wrapKey', 'unwrapKey'])
    const iv = randomBytes(12)
    const cek = await node.importKey('raw', randomBytes(16), 'AES-GCM', true, ['encrypt'])
    inputs = {
      iv,
      oaep: Buffer.from(await node.encrypt('RSA-OAEP', oaep.publicKey, Buffer.from('cek'))),
      sealed: Buffer.from(await hsm.subtle.encrypt({ name: 'AES-GCM', iv }, gcm, Buffer.from('claims'))),
      wrapped: Buffer.from(await hsm.subtle.wrapKey('raw', cek, kw, 'AES-KW')),
      smallOrder: await node.importKey('raw', Buffer.alloc(32), 'X25519', true, []),
    }
  })
  after(async () => {
    control.reset()
    await hsm?.close()
  })

  const badOperations = () => [
    () => hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, broken(inputs.oaep)),
    () => hsm.subtle.decrypt({ name: 'AES-GCM', iv: inputs.iv }, gcm, broken(inputs.sealed)),
    () => hsm.subtle.unwrapKey('raw', broken(inputs.wrapped), kw, 'AES-KW', 'AES-GCM', true, ['encrypt']),
    () => hsm.subtle.deriveBits({ name: 'X25519', public: inputs.smallOrder }, x25519.privateKey, 256),
  ]

  test('1,000 refused inputs beside 1,000 signatures: no reconnection, no session, no C_Initialize', async () => {
    const bad = badOperations()
    const data = Buffer.from('payload')
    const burst = (length) =>
      Promise.allSettled(Array.from({ length }, (_, i) => (i % 2 ? hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, signer.privateKey, data) : bad[(i >> 1) % bad.length]())))
    // Every signing worker started (each loads the module and opens its session once).
    await burst(400)
    const before = await control.counts()
    const outcomes = await burst(2000)
    const now = await control.counts()
    const refused = outcomes.filter((o, i) => i % 2 === 0)
    for (const o of refused) assert.equal(o.status === 'rejected' && o.reason.name === 'OperationError' && o.reason.message, REJECTED)
    assert.ok(
      outcomes.filter((o, i) => i % 2 === 1).every((o) => o.status === 'fulfilled'),
      'every signature was made',
    )
    assert.equal(now.C_Initialize - before.C_Initialize, 0, 'no C_Initialize')
    assert.equal(now.C_OpenSession - before.C_OpenSession, 0, 'no session opened')
    assert.equal(now.C_CloseSession - before.C_CloseSession, 0, 'no session closed')
    assert.equal(now.C_Login - before.C_Login, 0, 'no login')
    assert.equal(hsm.token.label, LABEL)
    // Each refused input was asked of the token once: never tried again.
    assert.equal(now.C_Decrypt - before.C_Decrypt, 500)
    assert.equal(now.C_UnwrapKey - before.C_UnwrapKey, 250)
    assert.equal(now.C_DeriveKey - before.C_DeriveKey, 250)
  })

  test('a device that fails at C_DecryptInit mid-burst is reconnected, and every decryption succeeds', async () => {
    for (const code of ['CKR_GENERAL_ERROR', 'CKR_DEVICE_ERROR']) {
      const before = await control.counts()
      control.fail('C_DecryptInit', code, { count: 1, skip: 20 })
      const outcomes = await Promise.allSettled(Array.from({ length: 100 }, () => hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, inputs.oaep)))
      assert.equal((await control.counts()).injected - before.injected, 1, 'the fault was injected')
      assert.deepEqual(
        outcomes.filter((o) => o.status === 'rejected').map((o) => String(o.reason)),
        [],
      )
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'value' does not exist on type 'PromiseSettledResult<any>'.
      for (const o of outcomes) assert.equal(Buffer.from(o.value).toString(), 'cek')
    }
  })

  test('CKR_DEVICE_ERROR at C_Decrypt is the device, not the input: tried again, and it succeeds', async () => {
    const before = await control.counts()
    control.fail('C_Decrypt', 'CKR_DEVICE_ERROR', { count: 1 })
    assert.equal(Buffer.from(await hsm.subtle.decrypt({ name: 'AES-GCM', iv: inputs.iv }, gcm, inputs.sealed)).toString(), 'claims')
    assert.equal((await control.counts()).C_Decrypt - before.C_Decrypt, 2)
  })

  test('a removed token: decrypts fail while it is away, and succeed once it is back', async () => {
    control.removed(true)
    await assert.rejects(hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, inputs.oaep, { timeout: 300 }))
    control.removed(false)
    let result
    for (let i = 0; i < 50 && !result; i++) {
      result = await hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, inputs.oaep).catch(() => new Promise((resolve) => setTimeout(resolve, 100)))
    }
    assert.equal(Buffer.from(result).toString(), 'cek')
  })
})
