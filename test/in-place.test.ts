// Calls in place (issue #17): a call alone, of a kind the device does fast, runs on the main thread
// instead of a signing worker. Through the fault module over SoftHSM, so that the device can be made
// slow or failing, and its calls counted: the module counts the C_Sign calls made on the main thread.
import assert from 'node:assert/strict'
import { generateKeyPairSync, verify as nodeVerify } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm } from './helpers/softhsm.js'
import { buildFaultModule, FaultControl } from './helpers/fault.js'

const LABEL = 'in-place'
const PIN = '564738'
const softhsm = freshSoftHsm()
softhsm.initToken(LABEL, PIN)
const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
softhsm.importKey(LABEL, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { label: 'p256', id: '01' }, PIN)

const control = new FaultControl()
Object.assign(process.env, control.env) // before the fault module is first loaded
const faultModule = buildFaultModule()
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

const params = { name: 'ECDSA', hash: 'SHA-256' }
const data = new TextEncoder().encode('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9')
const verifies = (signature: ArrayBuffer) => nodeVerify('sha256', data, { key: pair.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature))

async function open(options = {}) {
  const hsm = await Pkcs11Crypto.open({ library: faultModule, token: { label: LABEL }, pin: PIN, timeout: 5000, ...options })
  const { privateKey } = await hsm.keys.get({ label: 'p256' })
  return { hsm, privateKey }
}

/** Signs `count` times one after another; says how many ran in place (on the main thread), and checks every signature. */
async function signInTurn(hsm, privateKey, count: number): Promise<number> {
  const before = control.countsSync().mainThreadSigns
  for (let i = 0; i < count; i++) assert.ok(verifies(await hsm.subtle.sign(params, privateKey, data)), `signature ${i} verifies`)
  return control.countsSync().mainThreadSigns - before
}

describe('calls in place', () => {
  before(() => control.reset())
  after(() => control.reset())

  test('one call at a time on a fast device runs in place, on one more session; every signature verifies', async () => {
    const { hsm, privateKey } = await open()
    try {
      const before = control.countsSync().sessionsOpen
      // The first call of a kind goes to a worker, which times it; so does one every 4 ms, so
      // that the event loop turns (see the test below).
      const inPlace = await signInTurn(hsm, privateKey, 40)
      assert.ok(inPlace >= 20, `${inPlace} of 40 in place`)
      // The lookup session, one worker's, the one in place.
      assert.equal(control.countsSync().sessionsOpen - before, 2)
    } finally {
      await hsm.close()
    }
  })

  test('never with inPlaceMs: 0, nor without a session to spare (maxSessions: 2)', async () => {
    for (const options of [{ inPlaceMs: 0 }, { maxSessions: 2 }]) {
      const { hsm, privateKey } = await open(options)
      try {
        assert.equal(await signInTurn(hsm, privateKey, 20), 0, JSON.stringify(options))
      } finally {
        await hsm.close()
      }
    }
  })

  test('a device that turns slow leaves the main thread after one call', async () => {
    const { hsm, privateKey } = await open()
    try {
      assert.ok((await signInTurn(hsm, privateKey, 10)) >= 5)
      control.latency('C_Sign', 20_000)
      assert.ok((await signInTurn(hsm, privateKey, 6)) <= 1)
    } finally {
      control.reset()
      await hsm.close()
    }
  })

  test('calls in place back to back let the event loop turn', async () => {
    const { hsm, privateKey } = await open()
    try {
      await signInTurn(hsm, privateKey, 5)
      let turns = 0
      const ticking = setInterval(() => turns++, 1)
      const until = performance.now() + 300
      let signed = 0
      // Each answer's continuation makes the next call: all of it in microtasks, but for the
      // calls that go to a worker so that the loop turns.
      while (performance.now() < until) {
        verifies(await hsm.subtle.sign(params, privateKey, data))
        signed++
      }
      clearInterval(ticking)
      assert.ok(turns >= 10, `${turns} timer turns in 300 ms of ${signed} signatures`)
    } finally {
      await hsm.close()
    }
  })

  test("a failure in place is handled as a worker's: CKR_DEVICE_ERROR once, and the call still succeeds", async () => {
    const { hsm, privateKey } = await open()
    try {
      await signInTurn(hsm, privateKey, 5)
      control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 1 })
      assert.ok(verifies(await hsm.subtle.sign(params, privateKey, data)))
      assert.equal(control.countsSync().injected, 1)
      // Concurrent calls go to the workers, and in place again once alone.
      const signatures = await Promise.all(Array.from({ length: 32 }, () => hsm.subtle.sign(params, privateKey, data)))
      assert.ok(signatures.every(verifies))
      assert.ok((await signInTurn(hsm, privateKey, 10)) >= 5)
    } finally {
      control.reset()
      await hsm.close()
    }
  })

  test('close() closes the session in place too', async () => {
    const before = control.countsSync().sessionsOpen
    const { hsm, privateKey } = await open()
    await signInTurn(hsm, privateKey, 5)
    await hsm.close()
    assert.equal(control.countsSync().sessionsOpen, before)
  })
})
