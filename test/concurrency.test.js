// Many concurrent signs on one Pkcs11Crypto: each borrows its own session, so none meets
// CKR_OPERATION_ACTIVE, and the pool stays within its bound.
import assert from 'node:assert/strict'
import { webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'

const softhsm = freshSoftHsm()
softhsm.initToken('busy')
provisionTestKeys(softhsm, 'busy')
const { Pkcs11Crypto } = await import('../dist/index.js')

describe('500 concurrent signs', () => {
  let hsm
  before(async () => { hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'busy' }, pin: PIN, maxSessions: 6 }) })
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
      assert.deepEqual(failures.map((f) => f.reason.message), [])
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
    assert.deepEqual(all.map((s) => s.byteLength), Array.from({ length: 60 }, (_, i) => [256, 96, 64][i % 3]))
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
