// Several tokens, one key (issue #7): the same key on two SoftHSM tokens used as one. Token A is
// reached through the fault-injecting module, token B directly, so A alone can be made to fail.
import assert from 'node:assert/strict'
import { generateKeyPairSync, verify as nodeVerify } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { buildFaultModule, FaultControl } from './helpers/fault.js'

const softhsm = freshSoftHsm()
softhsm.initToken('replica-a')
softhsm.initToken('replica-b')
const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const pem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' })
for (const token of ['replica-a', 'replica-b']) softhsm.importKey(token, pem, { label: 'shared', id: '5a' })
softhsm.importKey('replica-a', generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }), { label: 'only-a', id: '5b' })

const control = new FaultControl()
Object.assign(process.env, control.env) // before the fault module is first loaded
const faultModule = buildFaultModule()
const { Pkcs11Crypto, KeyNotFoundError } = await import('pkcs11-webcrypto')

const params = { name: 'ECDSA', hash: 'SHA-256' }
const data = new TextEncoder().encode('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9')
const verifies = (signature) => nodeVerify('sha256', data, { key: pair.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature))

describe('a replica set of two tokens', () => {
  let hsm, privateKey
  before(async () => {
    control.reset()
    hsm = await Pkcs11Crypto.openGroup([
      { library: faultModule, token: { label: 'replica-a' }, pin: PIN, timeout: 3000 },
      { library: softhsm.module, token: { label: 'replica-b' }, pin: PIN, timeout: 3000 },
    ])
    ;({ privateKey } = await hsm.keys.get({ label: 'shared' }))
  })
  after(async () => {
    control.reset()
    await hsm.close()
  })

  /** Signs `count` times at concurrency 16; returns the outcomes and how many went through token A. */
  async function load(count) {
    const before = (await control.counts()).C_Sign
    const outcomes = await Promise.allSettled(Array.from({ length: count }, () => hsm.subtle.sign(params, privateKey, data)))
    return { outcomes, onA: (await control.counts()).C_Sign - before }
  }

  test('both healthy: both tokens serve a share of the requests', async () => {
    const { outcomes, onA } = await load(2000)
    assert.ok(outcomes.every((o) => o.status === 'fulfilled' && verifies(o.value)))
    const onB = 2000 - onA
    // Each goes to the token with the fewest under way, so the split follows each token's speed at
    // the moment (which a busy machine changes); what holds is that neither is left idle.
    assert.ok(Math.min(onA, onB) >= 2000 / 4, `A ${onA}, B ${onB}`)
  })

  test('token A fails: the load goes on on B with no failed request; A is used again once back', async () => {
    const results = []
    const t0 = performance.now()
    const running = Promise.all(
      Array.from({ length: 8 }, async () => {
        while (performance.now() - t0 < 5000) {
          try {
            assert.ok(verifies(await hsm.subtle.sign(params, privateKey, data)))
            results.push(true)
          } catch (error) {
            results.push(error)
          }
        }
      }),
    )
    await sleep(1000)
    control.removed(true)
    await sleep(2000)
    const whileAway = (await control.counts()).C_Sign
    await sleep(200)
    assert.equal((await control.counts()).C_Sign, whileAway, 'nothing is sent to A while it is away')
    control.removed(false)
    await running
    assert.deepEqual(results.filter((r) => r !== true).map(String), [])
    assert.ok(results.length > 1000, `${results.length} signs`)
    // A is back in the set.
    await sleep(500)
    const { onA } = await load(400)
    assert.ok(onA > 50, `${onA} of 400 went to A after its return`)
  })

  test('one failure on A is not even seen: the call moves to B', async () => {
    control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 1 })
    const { outcomes } = await load(100)
    assert.ok(outcomes.every((o) => o.status === 'fulfilled'))
  })

  test('a key that is not on every token of the set: KeyNotFoundError naming the token', async () => {
    await assert.rejects(hsm.keys.get({ label: 'only-a' }), (e) => e instanceof KeyNotFoundError && /replica-b/.test(e.message))
  })
})
