// JOSE algorithm names and WebCrypto algorithms, both ways.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { JOSE_ALGORITHMS, defaultJoseAlgorithm, joseNameOf } from '../../src/keys/jose-algorithms.js'

test("joseNameOf: the JOSE signature name of every table entry's WebCrypto algorithm", () => {
  for (const [alg, { name, hash, namedCurve, use }] of Object.entries(JOSE_ALGORITHMS)) {
    const named = joseNameOf({ name, hash: hash === undefined ? undefined : { name: hash }, namedCurve })
    // Ed25519 has two JOSE names (EdDSA, and RFC 9864's Ed25519); the first is the one given.
    // JWE names (RSA-OAEP, ECDH-ES, A128KW ...) are no signature's: none is given for them.
    assert.equal(named, use === 'enc' ? undefined : alg === 'Ed25519' ? 'EdDSA' : alg)
  }
  assert.equal(joseNameOf({ name: 'ECDSA', hash: { name: 'SHA-256' }, namedCurve: 'P-384' }), 'ES384')
  assert.equal(joseNameOf({ name: 'RSA-OAEP', hash: { name: 'SHA-256' } }), undefined)
})

test('defaultJoseAlgorithm: from the key type and curve', () => {
  assert.equal(defaultJoseAlgorithm('RSA'), 'RS256')
  assert.equal(defaultJoseAlgorithm('EC', 'P-256'), 'ES256')
  assert.equal(defaultJoseAlgorithm('EC', 'P-521'), 'ES512')
  assert.equal(defaultJoseAlgorithm('OKP', 'Ed25519'), 'EdDSA')
  assert.equal(defaultJoseAlgorithm('oct'), 'HS256')
})
