// A key PIN (CKA_ALWAYS_AUTHENTICATE) is spent once: a refused one is never sent again, concurrent
// calls with a PIN not yet tried make one context C_Login, CKR_PIN_LOCKED stops every key login.
// C_Login calls are counted by the fault module over the real SoftHSM (and, for the issue's own
// scenario, by OpenSC's pkcs11-spy).
import assert from 'node:assert/strict'
import { existsSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { webcrypto } from 'node:crypto'
import { after, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { buildFaultModule, FaultControl } from './helpers/fault.js'

const TOKEN = 'keypin'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'aa', '--id', '0aa0', '--always-auth'])
const control = new FaultControl(softhsm.dir)
Object.assign(process.env, control.env)
const SPY = ['/usr/lib/x86_64-linux-gnu/pkcs11-spy.so', '/usr/lib/aarch64-linux-gnu/pkcs11-spy.so'].find(existsSync)
const spyLog = join(softhsm.dir, 'spy.log')
process.env.PKCS11SPY = softhsm.module
process.env.PKCS11SPY_OUTPUT = spyLog
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

const ecdsa = { name: 'ECDSA', hash: 'SHA-256' }
const data = new TextEncoder().encode('key pin')
const opened = []
async function open(library = buildFaultModule()) {
  const hsm = await Pkcs11Crypto.open({ library, token: { label: TOKEN }, pin: PIN })
  opened.push(hsm)
  return hsm
}
after(() => Promise.all(opened.map((hsm) => hsm.close())))

/** C_Login calls since the last zero(), user and context logins together. */
const logins = async () => (await control.counts()).C_Login
const refusedWith = (code) => (e) => e.name === 'OperationError' && e.cause?.code === code

describe('a key PIN is spent once', () => {
  test('a refused key PIN (keys.get): one C_Login for 20 concurrent and 3 later calls, then a new PIN works', async () => {
    const hsm = await open()
    const wrong = await hsm.keys.get({ label: 'aa' }, { keyPin: '0000' })
    control.zero()
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => hsm.subtle.sign(ecdsa, wrong.privateKey, data)))
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'reason' does not exist on type 'PromiseSettledResult<ArrayBuffer>'.
    for (const r of results) assert.ok(r.status === 'rejected' && refusedWith('CKR_PIN_INCORRECT')(r.reason), String(r.reason))
    for (let i = 0; i < 3; i++) await assert.rejects(hsm.subtle.sign(ecdsa, wrong.privateKey, data), refusedWith('CKR_PIN_INCORRECT'))
    // The same key fetched again with the same PIN, or for another algorithm, knows it too.
    const again = await hsm.keys.get({ label: 'aa' }, { keyPin: '0000', algorithm: 'ES256' })
    await assert.rejects(hsm.subtle.sign(ecdsa, again.privateKey, data), refusedWith('CKR_PIN_INCORRECT'))
    assert.equal(await logins(), 1, 'one context C_Login with the refused PIN')
    // A new PIN, per call or by keys.get, is tried (and accepted: each use then logs in, as the key asks).
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'keyPin' does not exist in type 'Algorithm | EcdsaPar...
    const signature = await hsm.subtle.sign({ ...ecdsa, keyPin: PIN }, wrong.privateKey, data)
    assert.equal(await webcrypto.subtle.verify(ecdsa, wrong.publicKey, signature, data), true)
    const right = await hsm.keys.get({ label: 'aa' }, { keyPin: PIN })
    await hsm.subtle.sign(ecdsa, right.privateKey, data)
    assert.equal(await logins(), 3)
  })

  test('a refused per-call PIN is not sent again; CKR_PIN_INVALID and _LEN_RANGE are refusals too', async () => {
    const hsm = await open()
    const { privateKey } = await hsm.keys.get({ label: 'aa' })
    control.zero()
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'keyPin' does not exist in type 'Algorithm | EcdsaPar...
    for (let i = 0; i < 3; i++) await assert.rejects(hsm.subtle.sign({ ...ecdsa, keyPin: '1111' }, privateKey, data), refusedWith('CKR_PIN_INCORRECT'))
    for (const [code, value] of [
      ['CKR_PIN_INVALID', 0xa1],
      ['CKR_PIN_LEN_RANGE', 0xa2],
    ]) {
      control.fail('C_Login', value, { count: 1 })
      const pin = `x-${code}`
      // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'keyPin' does not exist in type 'Algorithm | EcdsaPar...
      for (let i = 0; i < 2; i++) await assert.rejects(hsm.subtle.sign({ ...ecdsa, keyPin: pin }, privateKey, data), refusedWith(code))
    }
    assert.equal(await logins(), 3)
  })

  test('concurrent calls, half with a wrong PIN not yet tried, half with the right one: 1 + 8 C_Logins', async () => {
    const hsm = await open()
    const { privateKey, publicKey } = await hsm.keys.get({ label: 'aa' })
    control.latency('C_Login', 20_000)
    control.zero()
    const [wrong, right] = await Promise.all(
      ['4444', PIN].map((keyPin) =>
        // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'keyPin' does not exist in type 'Algorithm | EcdsaPar...
        Promise.allSettled(Array.from({ length: 8 }, () => hsm.subtle.sign({ ...ecdsa, keyPin }, privateKey, data))),
      ),
    )
    control.clear('C_Login')
    for (const r of wrong) assert.ok(r.status === 'rejected' && refusedWith('CKR_PIN_INCORRECT')(r.reason))
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'value' does not exist on type 'PromiseSettledResult<ArrayBuffer>'.
    for (const r of right) assert.equal(await webcrypto.subtle.verify(ecdsa, publicKey, r.value, data), true)
    // Every use of such a key is a context login (the key says so): 8 for the right PIN; 1 for the wrong one.
    assert.equal(await logins(), 9)
  })

  test('a failure that says nothing of the PIN (the device hiccups) leaves it untried', async () => {
    const hsm = await open()
    const { privateKey } = await hsm.keys.get({ label: 'aa' }, { keyPin: PIN })
    control.fail('C_Login', 'CKR_FUNCTION_REJECTED', { count: 1 })
    await assert.rejects(hsm.subtle.sign(ecdsa, privateKey, data), refusedWith('CKR_FUNCTION_REJECTED'))
    assert.equal((await hsm.subtle.sign(ecdsa, privateKey, data)).byteLength, 64)
  })

  test('CKR_PIN_LOCKED stops every key login, whatever the PIN', async () => {
    const hsm = await open()
    const { privateKey } = await hsm.keys.get({ label: 'aa' })
    control.fail('C_Login', 'CKR_PIN_LOCKED', { count: 1 })
    control.zero()
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'keyPin' does not exist in type 'Algorithm | EcdsaPar...
    await assert.rejects(hsm.subtle.sign({ ...ecdsa, keyPin: '2222' }, privateKey, data), refusedWith('CKR_PIN_LOCKED'))
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'keyPin' does not exist in type 'Algorithm | EcdsaPar...
    for (const pin of [PIN, '3333']) await assert.rejects(hsm.subtle.sign({ ...ecdsa, keyPin: pin }, privateKey, data), refusedWith('CKR_PIN_LOCKED'))
    assert.equal(await logins(), 1)
  })

  test('pkcs11-spy counts it as well: 20 concurrent and 3 later signs with a wrong key PIN, one context C_Login', { skip: !SPY && 'pkcs11-spy.so not installed' }, async () => {
    rmSync(spyLog, { force: true })
    const hsm = await open(SPY)
    const wrong = await hsm.keys.get({ label: 'aa' }, { keyPin: '0000' })
    await Promise.allSettled(Array.from({ length: 20 }, () => hsm.subtle.sign(ecdsa, wrong.privateKey, data)))
    for (let i = 0; i < 3; i++) await assert.rejects(hsm.subtle.sign(ecdsa, wrong.privateKey, data), refusedWith('CKR_PIN_INCORRECT'))
    const log = readFileSync(spyLog, 'utf8')
    const contextLogins = log.split(/\n(?=\d+: )/).filter((call) => /^\d+: C_Login/.test(call) && /CKU_CONTEXT_SPECIFIC/.test(call))
    assert.equal(contextLogins.length, 1, 'one context C_Login')
  })
})
