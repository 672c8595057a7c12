// What index.ts exports is what the CLI uses: slots of a module without a login, the error classes
// the README names with their codes, the published JWK of one key.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import * as api from 'pkcs11-webcrypto'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const softhsm = freshSoftHsm()
softhsm.initToken('api-a')
softhsm.initToken('api-b')

test('listSlots: every slot and its token, no PIN needed', async () => {
  const slots = await api.listSlots({ library: softhsm.module })
  const labels = slots.map((s) => s.token?.label)
  // SoftHSM orders its slots by their (random) ids; the uninitialized token of the free slot has no label
  assert.deepEqual(labels.filter((label) => label).sort(), ['api-a', 'api-b'])
  assert.deepEqual(
    slots.map((s) => s.slotIndex),
    slots.map((_, i) => i),
  )
  for (const slot of slots) assert.equal(typeof slot.slotId, 'bigint')
  assert.ok(slots.every((s) => s.token?.model === 'SoftHSM v2'))
  // from the environment as Pkcs11Crypto.open reads it; a PIN there is neither needed nor read
  assert.deepEqual(
    (await api.listSlots({ env: { PKCS11_MODULE: softhsm.module, PKCS11_PIN_FILE: '/nonexistent' } })).map((s) => s.token?.label),
    labels,
  )
  // nor a URI's pin-source
  assert.deepEqual(
    (await api.listSlots({ uri: `pkcs11:?module-path=${softhsm.module}&pin-source=/nonexistent` })).map((s) => s.token?.label),
    labels,
  )
  await assert.rejects(api.listSlots({ env: {} }), { name: 'ConfigurationError', code: 'ERR_PKCS11_CONFIG' })
})

test('the error classes of the README, each with its code', () => {
  const expected = {
    TimeoutError: 'ERR_PKCS11_TIMEOUT',
    QueueFullError: 'ERR_PKCS11_QUEUE_FULL',
    ConfigurationError: 'ERR_PKCS11_CONFIG',
    ModuleLoadError: 'ERR_PKCS11_MODULE',
    TokenNotFoundError: 'ERR_PKCS11_TOKEN_NOT_FOUND',
    KeyNotFoundError: 'ERR_PKCS11_KEY_NOT_FOUND',
    KeyPinRequiredError: 'ERR_PKCS11_KEY_PIN_REQUIRED',
    InputRejectedError: 'ERR_PKCS11_INPUT_REJECTED',
    ClosedError: 'ERR_PKCS11_CLOSED',
  }
  for (const [name, code] of Object.entries(expected)) {
    const error = new api[name]('x')
    assert.ok(error instanceof api.Pkcs11WebCryptoError, name)
    assert.equal(error.name, name)
    assert.equal(error.code, code)
  }
  assert.equal(new api.TokenError('CKR_PIN_INCORRECT', 0xa0, 'C_Login').code, 'CKR_PIN_INCORRECT')
})

test('publishedJwk and joseNameOf: one key as jwks publishes it, with the alg asked for', async () => {
  const hsm = await api.Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'api-a' }, pin: PIN })
  try {
    await hsm.keys.generate({ algorithm: 'PS256', label: 'rsa' })
    const key = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'PS256' })
    assert.equal(api.joseNameOf(key.privateKey.algorithm), 'PS256')
    const jwk = await api.publishedJwk(key, 'PS256')
    assert.equal(jwk.alg, 'PS256')
    assert.equal((await api.publishedJwk(key)).alg, undefined)
    assert.deepEqual(
      (await hsm.jwks()).keys.map((k) => [k.kty, k.alg, k.kid]),
      [['RSA', undefined, jwk.kid]],
    )
  } finally {
    await hsm.close()
  }
})

test('redact: what the CLI and every library error use to hide a PIN', () => {
  assert.equal(api.redact('pkcs11:token=t?module-path=/x.so&pin-value=98765432'), 'pkcs11:token=t?module-path=/x.so&pin-value=(redacted)')
  assert.ok(!api.redact('pkcs11:token=t&PIN_Value=98765432?x').includes('98765432'))
})
