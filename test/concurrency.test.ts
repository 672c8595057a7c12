// Many concurrent signs on one Pkcs11Crypto: each borrows its own session, so none meets
// CKR_OPERATION_ACTIVE, and the pool stays within its bound.
import assert from 'node:assert/strict'
import { randomBytes, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'

const softhsm = freshSoftHsm()
softhsm.initToken('busy')
provisionTestKeys(softhsm, 'busy')
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

describe('500 concurrent signs', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'busy' }, pin: PIN, maxSessions: 6 })
  })
  after(() => hsm.close())

  for (const [label, algorithm, params] of [
    ['rsa', 'RS256', 'RSASSA-PKCS1-v1_5'],
    ['p256', 'ES256', { name: 'ECDSA', hash: 'SHA-256' }],
  ]) {
    test(`${algorithm}: all succeed and verify`, async () => {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm })
      const messages = Array.from({ length: 500 }, (_, i) => new TextEncoder().encode(`message ${i}`))
      const results = await Promise.allSettled(messages.map((m) => hsm.subtle.sign(params, privateKey, m)))
      const failures = results.filter((r) => r.status === 'rejected')
      assert.deepEqual(
        failures.map((f) => f.reason.message),
        [],
      )
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'value' does not exist on type 'PromiseSettledResult<any>'.
      const checks = await Promise.all(results.map((r, i) => webcrypto.subtle.verify(params, publicKey, r.value, messages[i])))
      assert.ok(checks.every(Boolean))
      assert.ok(hsm.openSessions <= 6, `${hsm.openSessions} sessions open`)
    })
  }

  test('signing with a key of each kind at once mixes freely', async () => {
    const rsa = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'PS256' })
    const ec = await hsm.keys.get({ label: 'p384' })
    const ed = await hsm.keys.get({ label: 'ed25519' })
    const data = new Uint8Array(100)
    const sign = [
      () => hsm.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, rsa.privateKey, data),
      () => hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, ec.privateKey, data),
      () => hsm.subtle.sign('Ed25519', ed.privateKey, data),
    ]
    const all = await Promise.all(Array.from({ length: 60 }, (_, i) => sign[i % 3]()))
    assert.deepEqual(
      all.map((s) => s.byteLength),
      Array.from({ length: 60 }, (_, i) => [256, 96, 64][i % 3]),
    )
  })

  test('one batch holds signs and verifies of every size, good and bad, each answered as its own', async () => {
    const rsa = await hsm.keys.get({ label: 'rsa' })
    const ec = await hsm.keys.get({ label: 'p256' })
    const hmac = await hsm.keys.get({ label: 'hmac' })
    // Sizes around and far past the room a batch's shared memory starts with (16 KiB).
    const sizes = [0, 1, 100, 16 * 1024 - 7, 16 * 1024 + 1, 300 * 1024, 2 * 1024 * 1024]
    const messages = sizes.map((size) => randomBytes(size))
    const rsaParams = 'RSASSA-PKCS1-v1_5'
    const ecParams = { name: 'ECDSA', hash: 'SHA-256' }
    const hmacParams = 'HMAC'
    const hmacSignature = await hsm.subtle.sign(hmacParams, hmac.privateKey, messages[2])
    // All started in one tick: they leave in the same few batches.
    const calls = messages.flatMap((m) => [hsm.subtle.sign(rsaParams, rsa.privateKey, m), hsm.subtle.sign(ecParams, ec.privateKey, m)])
    const tampered = new Uint8Array(hmacSignature.slice(0))
    tampered[0] ^= 1
    const checks = [
      hsm.subtle.verify(hmacParams, hmac.privateKey, hmacSignature, messages[2]),
      hsm.subtle.verify(hmacParams, hmac.privateKey, tampered, messages[2]),
      hsm.subtle.verify(hmacParams, hmac.privateKey, new Uint8Array(3), messages[2]),
      hsm.subtle.verify(hmacParams, hmac.privateKey, new Uint8Array(0), messages[2]),
    ]
    const signatures = await Promise.all(calls)
    for (const [i, message] of messages.entries()) {
      assert.equal(signatures[2 * i].byteLength, 256)
      assert.equal(signatures[2 * i + 1].byteLength, 64)
      assert.ok(await webcrypto.subtle.verify(rsaParams, rsa.publicKey, signatures[2 * i], message), `RS256 over ${message.length} bytes`)
      assert.ok(await webcrypto.subtle.verify(ecParams, ec.publicKey, signatures[2 * i + 1], message), `ES256 over ${message.length} bytes`)
    }
    assert.deepEqual(await Promise.all(checks), [true, false, false, false])
  })

  test('close() waits for signatures under way, then refuses new ones', async () => {
    const other = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'busy' }, pin: PIN, maxSessions: 3 })
    const { privateKey } = await other.keys.get({ label: 'rsa' })
    const running = Promise.allSettled(Array.from({ length: 40 }, () => other.subtle.sign('RSASSA-PKCS1-v1_5', privateKey, new Uint8Array(8))))
    await new Promise((resolve) => setImmediate(resolve))
    await other.close()
    const outcomes = await running
    // Those holding a session finished; those still queued were told the instance closed.
    assert.ok(outcomes.some((o) => o.status === 'fulfilled'))
    for (const o of outcomes.filter((o) => o.status === 'rejected')) assert.equal(o.reason.cause?.code, 'ERR_PKCS11_CLOSED')
    assert.equal(other.openSessions, 0)
    await assert.rejects(other.subtle.sign('RSASSA-PKCS1-v1_5', privateKey, new Uint8Array(8)), { name: 'OperationError' })
    // The first instance, on the same token and module, is untouched.
    const { privateKey: mine } = await hsm.keys.get({ label: 'p256' })
    assert.equal((await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, mine, new Uint8Array(8))).byteLength, 64)
  })
})
