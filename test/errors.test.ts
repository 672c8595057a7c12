// Bad input gets the spec's error type and a clear message, loses nothing, and leaves the process
// healthy; a wrong PIN is tried once and never printed.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'

const softhsm = freshSoftHsm()
softhsm.initToken('errs')
provisionTestKeys(softhsm, 'errs')
const { Pkcs11Crypto, TokenError, KeyNotFoundError, ModuleLoadError, TokenNotFoundError, ConfigurationError } = await import('pkcs11-webcrypto')
const SPY = ['/usr/lib/x86_64-linux-gnu/pkcs11-spy.so', '/usr/lib/aarch64-linux-gnu/pkcs11-spy.so'].find(existsSync)
const data = new Uint8Array([1, 2, 3])

describe('WebCrypto errors', () => {
  let hsm, rsa, ec, hmac
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'errs' }, pin: PIN })
    rsa = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'PS256' })
    ec = await hsm.keys.get({ label: 'p256' })
    hmac = await hsm.keys.get({ label: 'hmac' })
  })
  after(() => hsm.close())

  test("an algorithm that is not the key's: InvalidAccessError", async () => {
    await assert.rejects(hsm.subtle.sign('RSASSA-PKCS1-v1_5', ec.privateKey, data), { name: 'InvalidAccessError', message: /ECDSA, not RSASSA-PKCS1-v1_5/ })
    await assert.rejects(hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, rsa.privateKey, data), { name: 'InvalidAccessError' })
  })

  test('an unknown algorithm or hash: NotSupportedError', async () => {
    await assert.rejects(hsm.subtle.sign('FOO-SIGN', ec.privateKey, data), { name: 'NotSupportedError' })
    await assert.rejects(hsm.subtle.sign({ name: 'ECDSA', hash: 'MD5' }, ec.privateKey, data), { name: 'NotSupportedError' })
  })

  test('missing or malformed members: TypeError', async () => {
    await assert.rejects(hsm.subtle.sign({ name: 'ECDSA' }, ec.privateKey, data), TypeError)
    await assert.rejects(hsm.subtle.sign({ name: 'RSA-PSS' }, rsa.privateKey, data), TypeError)
    await assert.rejects(hsm.subtle.sign({ name: 'RSA-PSS', saltLength: -1 }, rsa.privateKey, data), TypeError)
    await assert.rejects(hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, 'not bytes'), TypeError)
    await assert.rejects(hsm.subtle.sign(42, ec.privateKey, data), TypeError)
    await assert.rejects(hsm.subtle.sign(), TypeError)
  })

  test('a usage the key lacks: InvalidAccessError', async () => {
    await assert.rejects(hsm.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, new Uint8Array(64), data), { name: 'InvalidAccessError', message: /"verify"/ })
  })

  test("a public key to sign: InvalidAccessError (from Node's WebCrypto, as the key is Node's)", async () => {
    await assert.rejects(hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.publicKey, data), { name: 'InvalidAccessError' })
  })

  test('exporting or wrapping a token private key: InvalidAccessError', async () => {
    for (const format of ['pkcs8', 'jwk', 'raw', 'spki']) {
      await assert.rejects(hsm.subtle.exportKey(format, ec.privateKey), { name: 'InvalidAccessError' })
    }
    await assert.rejects(hsm.subtle.exportKey('jwk', hmac.privateKey), { name: 'InvalidAccessError' })
    const wrapper = await hsm.subtle.generateKey({ name: 'AES-KW', length: 256 }, false, ['wrapKey'])
    await assert.rejects(hsm.subtle.wrapKey('pkcs8', ec.privateKey, wrapper, 'AES-KW'), { name: 'InvalidAccessError' })
  })

  test('decrypting or deriving with a key handed out for signing: InvalidAccessError', async () => {
    await assert.rejects(hsm.subtle.decrypt({ name: 'RSA-OAEP' }, rsa.privateKey, data), { name: 'InvalidAccessError' })
    await assert.rejects(hsm.subtle.deriveBits({ name: 'ECDH', public: ec.publicKey }, ec.privateKey, 256), { name: 'InvalidAccessError' })
    await assert.rejects(hsm.subtle.decrypt({ name: 'RSA-FOO' }, rsa.privateKey, data), { name: 'NotSupportedError' })
  })

  test('unknown keys and bad selectors', async () => {
    await assert.rejects(hsm.keys.get({ label: 'nope' }), (e) => e instanceof KeyNotFoundError && e.code === 'ERR_PKCS11_KEY_NOT_FOUND' && /label "nope"/.test(e.message))
    await assert.rejects(hsm.keys.get({ id: 'ff' }), KeyNotFoundError)
    await assert.rejects(hsm.keys.get({ id: 'xyz' }), TypeError)
    await assert.rejects(hsm.keys.get({ id: '012' }), TypeError)
    await assert.rejects(hsm.keys.get(42), TypeError)
    await assert.rejects(hsm.keys.get({}), TypeError)
    await assert.rejects(hsm.keys.get('pkcs11:token=errs'), TypeError)
    // Rejected, not thrown: nothing of a malformed selector or option reaches the cache key first.
    await assert.rejects(hsm.keys.get({ label: 12n }), /key label must be a string/)
    await assert.rejects(hsm.keys.get({ label: 'nope' }, { keyPin: 1234 }), /keyPin must be a string/)
  })

  test('an algorithm that does not fit the key: InvalidAccessError; unknown: NotSupportedError', async () => {
    await assert.rejects(hsm.keys.get({ label: 'p256' }, { algorithm: 'RS256' }), { name: 'InvalidAccessError', message: /P-256 key "p256" cannot be used with RS256/ })
    await assert.rejects(hsm.keys.get({ label: 'p256' }, { algorithm: 'ES384' }), { name: 'InvalidAccessError' })
    await assert.rejects(hsm.keys.get({ label: 'rsa' }, { algorithm: 'EdDSA' }), { name: 'InvalidAccessError' })
    await assert.rejects(hsm.keys.get({ label: 'ed25519' }, { algorithm: 'ES256' }), { name: 'InvalidAccessError' })
    await assert.rejects(hsm.keys.get({ label: 'rsa' }, { algorithm: 'XX999' }), { name: 'NotSupportedError' })
  })

  test('after all that, signing still works', async () => {
    const signature = await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, data)
    assert.equal(await hsm.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec.publicKey, signature, data), true)
  })
})

describe('opening errors', () => {
  test('a missing module: ModuleLoadError naming the path', async () => {
    await assert.rejects(
      Pkcs11Crypto.open({ library: '/nonexistent/libpkcs11.so', pin: PIN }),
      (e) => e instanceof ModuleLoadError && e.code === 'ERR_PKCS11_MODULE' && e.message.includes('/nonexistent/libpkcs11.so'),
    )
  })

  test('a file that is no PKCS#11 module: ModuleLoadError', async () => {
    await assert.rejects(Pkcs11Crypto.open({ library: softhsm.conf, pin: PIN }), ModuleLoadError)
  })

  test('no module at all: ConfigurationError', async () => {
    await assert.rejects(Pkcs11Crypto.open({ env: {} }), ConfigurationError)
  })

  test('an unknown token: TokenNotFoundError listing the tokens present', async () => {
    await assert.rejects(
      Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'other' }, pin: PIN }),
      (e) => e instanceof TokenNotFoundError && /label "other"/.test(e.message) && /"errs"/.test(e.message),
    )
  })

  test('no PIN for a token that needs one: ConfigurationError', async () => {
    await assert.rejects(Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'errs' }, env: {} }), ConfigurationError)
  })

  test('a wrong PIN: one C_Login, CKR_PIN_INCORRECT, the PIN in no message', { skip: !SPY && 'pkcs11-spy.so not installed' }, async () => {
    const log = join(softhsm.dir, 'spy.log')
    process.env.PKCS11SPY = softhsm.module
    process.env.PKCS11SPY_OUTPUT = log
    const wrongPin = '987654'
    const error = await Pkcs11Crypto.open({ library: SPY, token: { label: 'errs' }, pin: wrongPin }).then(
      () => null,
      (e) => e,
    )
    assert.ok(error instanceof TokenError, String(error))
    assert.equal(error.code, 'CKR_PIN_INCORRECT')
    assert.match(error.message, /C_Login failed: CKR_PIN_INCORRECT/)
    for (const text of [error.message, error.stack, JSON.stringify(error), String(error)]) assert.ok(!text.includes(wrongPin))
    const calls = readFileSync(log, 'utf8')
      .split('\n')
      .filter((line) => /^\d+: C_Login$/.test(line.trim()))
    assert.equal(calls.length, 1, `C_Login calls: ${calls.join(' | ')}`)
    // The process is healthy: the right PIN opens the token and signs.
    const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'errs' }, pin: PIN })
    const { privateKey } = await hsm.keys.get({ label: 'ed25519' })
    assert.equal((await hsm.subtle.sign('Ed25519', privateKey, data)).byteLength, 64)
    await hsm.close()
  })

  test('a closed instance: OperationError whose cause is ClosedError', async () => {
    const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'errs' }, pin: PIN })
    const { privateKey } = await hsm.keys.get({ label: 'ed25519' })
    await hsm.close()
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
    await assert.rejects(hsm.subtle.sign('Ed25519', privateKey, data), (e) => e.name === 'OperationError' && e.cause?.code === 'ERR_PKCS11_CLOSED')
    assert.throws(() => hsm.getRandomValues(new Uint8Array(4)), { code: 'ERR_PKCS11_CLOSED' })
  })
})
