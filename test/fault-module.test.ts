// The fault-injecting PKCS#11 module (test/fault-module/) does what it says: it passes calls
// through to SoftHSM, injects CKR_ codes (once, N times, at a rate), adds latency, simulates token
// removal, and counts calls. Shown with the raw binding and with our library. This file shows the
// module only; how the library recovers from these faults is for the failure tests built on it.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pkcs11js from 'pkcs11js'
import { PIN } from './helpers/softhsm.js'
import { CKR, faultP256Token, JWT_INPUT } from './helpers/fault.js'

const LABEL = 'fault'
const { control, faultModule, verifies } = faultP256Token(LABEL, { id: '02' })

const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const data = JWT_INPUT

/** Asserts that `run` throws the pkcs11js error for `name`. */
function throwsCkr(run, name) {
  assert.throws(run, (error) => {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
    assert.equal(error.code, CKR[name], `expected ${name}, got ${error.message}`)
    return true
  })
}

describe('the raw binding through the fault module', () => {
  const p11 = new pkcs11js.PKCS11()
  let slot, session, key

  const openLoggedIn = () => {
    const opened = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    p11.C_Login(opened, pkcs11js.CKU_USER, PIN)
    p11.C_FindObjectsInit(opened, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_LABEL, value: 'p256' },
    ])
    const [found] = p11.C_FindObjects(opened, 1)
    p11.C_FindObjectsFinal(opened)
    return { opened, found }
  }

  before(() => {
    p11.load(faultModule)
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
    slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === LABEL)
    assert.ok(slot, 'the token is visible through the fault module')
    ;({ opened: session, found: key } = openLoggedIn())
    assert.ok(key, 'the key is found through the fault module')
  })
  after(() => {
    control.reset()
    p11.C_Finalize()
    p11.close()
  })

  test('calls pass through, and are counted', async () => {
    const before = await control.counts()
    const digest = sha256(data)
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key)
    const signature = p11.C_Sign(session, digest, Buffer.alloc(64))
    assert.equal(signature.length, 64)
    assert.equal(verifies(signature), true)
    const now = await control.counts()
    assert.equal(now.C_SignInit - before.C_SignInit, 1)
    assert.equal(now.C_Sign - before.C_Sign, 1)
    assert.equal(now.C_OpenSession, 1)
    assert.equal(now.sessionsOpen, 1)
  })

  test('fail count 2: exactly two C_Sign calls fail, and each ends the real operation', () => {
    control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 2 })
    const digest = sha256(data)
    for (let i = 0; i < 2; i++) {
      p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key) // no CKR_OPERATION_ACTIVE: the failed C_Sign ended it
      throwsCkr(() => p11.C_Sign(session, digest, Buffer.alloc(64)), 'CKR_DEVICE_ERROR')
    }
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key)
    assert.equal(verifies(p11.C_Sign(session, digest, Buffer.alloc(64))), true)
  })

  test('fail rate 3 (with skip 1): every third call after the first fails', () => {
    control.fail('C_GenerateRandom', 'CKR_FUNCTION_FAILED', { rate: 3, skip: 1 })
    const outcomes = []
    for (let i = 0; i < 8; i++) {
      try {
        p11.C_GenerateRandom(session, Buffer.alloc(8))
        outcomes.push('ok')
      } catch (error) {
        assert.equal(error.code, CKR.CKR_FUNCTION_FAILED)
        outcomes.push('fail')
      }
    }
    assert.deepEqual(outcomes, ['ok', 'ok', 'ok', 'fail', 'ok', 'ok', 'fail', 'ok'])
    control.clear('C_GenerateRandom')
    p11.C_GenerateRandom(session, Buffer.alloc(8))
  })

  test('a failure injected before the call: the real function is not called', () => {
    control.fail('C_Login', 'CKR_PIN_INCORRECT')
    const other = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
    // The user is logged in already (login is per token): a real C_Login would say CKR_USER_ALREADY_LOGGED_IN.
    throwsCkr(() => p11.C_Login(other, pkcs11js.CKU_USER, PIN), 'CKR_PIN_INCORRECT')
    throwsCkr(() => p11.C_Login(other, pkcs11js.CKU_USER, PIN), 'CKR_USER_ALREADY_LOGGED_IN')
    p11.C_CloseSession(other)
  })

  test('a removal waits for the calls inside the real module: a key generation under way ends well, then its session is closed', async () => {
    // SoftHSM frees a session closed under another thread's call: such a call then fails oddly
    // (CKR_SESSION_HANDLE_INVALID here, CKR_KEY_FUNCTION_NOT_PERMITTED for a sign) or reads freed
    // memory. A removal is a card pulled between two calls.
    const publicTemplate = [
      { type: pkcs11js.CKA_MODULUS_BITS, value: 2048 },
      { type: pkcs11js.CKA_TOKEN, value: false },
    ]
    const privateTemplate = [
      { type: pkcs11js.CKA_TOKEN, value: false },
      { type: pkcs11js.CKA_SIGN, value: true },
    ]
    let overlapped = false
    for (let attempt = 0; attempt < 5 && !overlapped; attempt++) {
      const other = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
      let settled = false
      const generation = p11
        .C_GenerateKeyPairAsync(other, { mechanism: pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN }, publicTemplate, privateTemplate)
        .then(
          () => 'CKR_OK',
          (error) => error.message,
        )
        .finally(() => (settled = true))
      await sleep(20)
      overlapped = !settled
      control.removed(true)
      p11.C_GetInfo() // applies the removal
      assert.equal(await generation, 'CKR_OK')
      assert.equal((await control.counts()).sessionsOpen, 0, 'the removal closed the real sessions')
      control.removed(false)
      p11.C_GetInfo()
      ;({ opened: session, found: key } = openLoggedIn())
    }
    assert.ok(overlapped, 'a removal came while a key generation was under way')
  })

  test('removal: CKR_DEVICE_REMOVED, no token; after re-insertion old sessions are invalid', async () => {
    control.removed(true)
    const digest = sha256(data)
    throwsCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key), 'CKR_DEVICE_REMOVED')
    assert.equal(p11.C_GetSlotList(true).length, 0)
    assert.ok(p11.C_GetSlotList(false).length > 0)
    // @ts-expect-error TS2551 (converted from JavaScript): Property 'CKF_TOKEN_PRESENT' does not exist on type 'typeof import("pkcs11js")'. Did you mean 'CKR_TOKEN_NO...
    assert.equal(p11.C_GetSlotInfo(slot).flags & pkcs11js.CKF_TOKEN_PRESENT, 0)
    throwsCkr(() => p11.C_GetTokenInfo(slot), 'CKR_TOKEN_NOT_PRESENT')
    throwsCkr(() => p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION), 'CKR_TOKEN_NOT_PRESENT')
    assert.equal((await control.counts()).sessionsOpen, 0, 'removal closed the real sessions')

    control.removed(false)
    assert.equal(p11.C_GetTokenInfo(slot).label.trim(), LABEL)
    throwsCkr(() => p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key), 'CKR_SESSION_HANDLE_INVALID')
    throwsCkr(() => p11.C_CloseSession(session), 'CKR_SESSION_HANDLE_INVALID')
    // A new session works, and must log in again: the removal logged the token out.
    const fresh = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    assert.notDeepEqual(fresh, session, 'handles are never reused')
    assert.equal(p11.C_GetSessionInfo(fresh).state, 2) // CKS_RW_PUBLIC_SESSION
    p11.C_CloseSession(fresh)
    ;({ opened: session, found: key } = openLoggedIn())
    p11.C_SignInit(session, { mechanism: pkcs11js.CKM_ECDSA }, key)
    assert.equal(verifies(p11.C_Sign(session, digest, Buffer.alloc(64))), true)
    p11.C_CloseSession(session)
    assert.equal((await control.counts()).sessionsOpen, 0)
  })
})

describe('our library through the fault module', () => {
  let hsm, privateKey
  const params = { name: 'ECDSA', hash: 'SHA-256' }

  before(async () => {
    control.reset()
    control.zero()
    hsm = await Pkcs11Crypto.open({ library: faultModule, token: { label: LABEL }, pin: PIN, timeout: 1000 })
    ;({ privateKey } = await hsm.keys.get({ label: 'p256' }))
  })
  after(async () => {
    control.reset()
    await hsm?.close()
  })

  test('signing passes through, and the calls are counted', async () => {
    const before = await control.counts()
    for (let i = 0; i < 3; i++) assert.equal(verifies(await hsm.subtle.sign(params, privateKey, data)), true)
    const now = await control.counts()
    assert.equal(now.C_Sign - before.C_Sign, 3)
    assert.equal(now.C_SignInit - before.C_SignInit, 3)
    assert.ok(now.C_OpenSession >= 1)
    assert.equal(now.sessionsOpened, now.C_OpenSession)
    assert.equal(now.sessionsOpen, now.sessionsOpened - now.sessionsClosed)
    assert.ok(now.C_Login >= 1)
  })

  test("getRandomValues is the token's C_GenerateRandom, one call per fill", async () => {
    const before = await control.counts()
    const random = hsm.getRandomValues(new Uint8Array(64))
    assert.notDeepEqual(Buffer.from(random), Buffer.alloc(64))
    assert.equal((await control.counts()).C_GenerateRandom - before.C_GenerateRandom, 1)
  })

  test('fail C_Sign CKR_DEVICE_ERROR count 1: the sign is tried once more, and succeeds', async () => {
    const before = await control.counts()
    control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 1 })
    assert.equal(verifies(await hsm.subtle.sign(params, privateKey, data)), true)
    const now = await control.counts()
    assert.equal(now.C_Sign - before.C_Sign, 2)
    assert.equal(now.injected - before.injected, 1)
  })

  test('fail C_Sign CKR_DEVICE_ERROR count 2: tried twice, then an OperationError naming the code', async () => {
    const before = await control.counts()
    control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 2 })
    await assert.rejects(hsm.subtle.sign(params, privateKey, data), (error) => {
      assert.ok(error instanceof DOMException)
      assert.equal(error.name, 'OperationError')
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
      assert.equal(error.cause?.code, 'CKR_DEVICE_ERROR')
      assert.match(error.message, /C_Sign failed: CKR_DEVICE_ERROR/)
      return true
    })
    assert.equal(verifies(await hsm.subtle.sign(params, privateKey, data)), true)
    const now = await control.counts()
    assert.equal(now.C_Sign - before.C_Sign, 3)
    assert.equal(now.injected - before.injected, 2)
  })

  test('latency 50 ms on C_Sign: a sign takes at least 50 ms', async () => {
    control.latency('C_Sign', 50_000)
    let started = performance.now()
    assert.equal(verifies(await hsm.subtle.sign(params, privateKey, data)), true)
    const slow = performance.now() - started
    assert.ok(slow >= 50, `took ${slow} ms`)
    control.latency('C_Sign', 0)
    started = performance.now()
    await hsm.subtle.sign(params, privateKey, data)
    const fast = performance.now() - started
    assert.ok(fast < slow, `without latency ${fast} ms, with ${slow} ms`)
  })

  test('latency is slept outside the lock: concurrent signs overlap', async () => {
    control.latency('C_Sign', 100_000)
    control.zero()
    const signatures = await Promise.all(Array.from({ length: 4 }, () => hsm.subtle.sign(params, privateKey, data)))
    control.latency('C_Sign', 0)
    for (const signature of signatures) assert.equal(verifies(signature), true)
    // Counted by the module: calls asleep in their latency at the same moment (not a duration).
    const { sleepingPeak, sleepingNow } = await control.counts()
    assert.equal(sleepingNow, 0)
    assert.ok(sleepingPeak >= 2, `at most ${sleepingPeak} sign slept at a time: not in parallel`)
  })

  test('removed 1: signs wait for the deadline (1 s here), then fail naming CKR_DEVICE_REMOVED', async () => {
    control.removed(true)
    const started = performance.now()
    await assert.rejects(hsm.subtle.sign(params, privateKey, data), (error) => {
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
      assert.equal(error.name, 'OperationError')
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'cause' does not exist on type 'unknown'.
      assert.equal(error.cause?.code, 'CKR_DEVICE_REMOVED')
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'message' does not exist on type 'unknown'.
      assert.match(error.message, /did not come back within 1000 ms/)
      return true
    })
    const waited = performance.now() - started
    assert.ok(waited >= 900 && waited < 3000, `waited ${waited} ms`)
    assert.equal((await control.counts()).sessionsOpen, 0)
    control.removed(false)
  })

  test('after close, no session is left open', async () => {
    await hsm.close()
    hsm = undefined
    const now = await control.counts()
    assert.equal(now.sessionsOpen, 0)
    assert.ok(now.C_Finalize >= 1)
  })
})

// Found with this module: a failure that dropped the pool's only session closed the token's last
// session, which logged the user out (the cached key handles then answered
// CKR_OBJECT_HANDLE_INVALID). The pool now opens the successor before it closes the last session.
describe('our library after a dropped last session', () => {
  test('the next sign succeeds: the login outlives the dropped session', async () => {
    // Two sessions in all: one for lookups, one signing worker, whose session is dropped twice.
    const hsm = await Pkcs11Crypto.open({ library: faultModule, token: { label: LABEL }, pin: PIN, maxSessions: 2 })
    try {
      const { privateKey } = await hsm.keys.get({ label: 'p256' })
      const params = { name: 'ECDSA', hash: 'SHA-256' }
      await hsm.subtle.sign(params, privateKey, data)
      control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 2 })
      await assert.rejects(hsm.subtle.sign(params, privateKey, data), { name: 'OperationError' })
      assert.equal(verifies(await hsm.subtle.sign(params, privateKey, data)), true)
    } finally {
      control.reset()
      await hsm.close()
    }
  })
})

function sha256(bytes) {
  return createHash('sha256').update(bytes).digest()
}
