// Issue #13: JWE through unmodified jose with installGlobal(): every key management algorithm the
// token serves (RSA-OAEP, ECDH-ES(+A*KW) on each curve and X25519, A*KW, A*GCMKW, dir) with every
// content encryption; each JWE also tampered with (it must fail). JWEs made with software keys
// decrypt with the token's; JWEs made with token secret keys decrypt with the same key in software.
import assert from 'node:assert/strict'
import { randomBytes, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import * as jose from 'jose'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const { CompactEncrypt, compactDecrypt, FlattenedEncrypt, flattenedDecrypt, GeneralEncrypt, generalDecrypt, EncryptJWT, jwtDecrypt, base64url } = jose

const softhsm = freshSoftHsm()
softhsm.initToken('jwe')
const { Pkcs11Crypto, TokenCryptoKey } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle
const ENCS = ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512']
const CURVES = ['P-256', 'P-384', 'P-521', 'X25519']
const KW = ['', '+A128KW', '+A192KW', '+A256KW']
const plaintext = new TextEncoder().encode('the claims of an encrypted ID token')

/** The compact JWE `jwe` with one byte of part `part` (1 encrypted key, 2 IV, 3 ciphertext, 4 tag) changed. */
function tamper(jwe, part) {
  const parts = jwe.split('.')
  const bytes = base64url.decode(parts[part])
  if (bytes.length === 0) return undefined
  bytes[bytes.length >> 1] ^= 0x01
  parts[part] = base64url.encode(bytes)
  return parts.join('.')
}

async function assertTamperedFail(jwe, key) {
  for (const part of [1, 2, 3, 4]) {
    const bad = tamper(jwe, part)
    if (bad) await assert.rejects(compactDecrypt(bad, key), (e) => e instanceof jose.errors.JOSEError, `part ${part}`)
  }
}

describe('JWE through jose with token keys', () => {
  let hsm
  let uninstall
  const rsa = {}
  const ecdh = {}
  const secrets = {}
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'jwe' }, pin: PIN })
    await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'rsa-oaep' })
    rsa['RSA-OAEP'] = await hsm.keys.get({ label: 'rsa-oaep' }, { algorithm: 'RSA-OAEP' })
    for (const curve of CURVES) {
      await hsm.keys.generate({ algorithm: 'ECDH-ES', namedCurve: curve, label: `ecdh-${curve}` })
      ecdh[curve] = await hsm.keys.get({ label: `ecdh-${curve}` }, { algorithm: 'ECDH-ES' })
    }
    // AES keys with known values (not extractable on the token), and the same in software.
    for (const bits of [128, 192, 256]) {
      const value = randomBytes(bits / 8)
      await hsm.subtle.importKey('raw', value, { name: 'AES-KW', label: `kw${bits}` }, false, ['wrapKey', 'unwrapKey'])
      await hsm.subtle.importKey('raw', value, { name: 'AES-GCM', label: `gcm${bits}` }, false, ['encrypt', 'decrypt'])
      secrets[bits] = {
        value,
        kw: (await hsm.keys.get({ label: `kw${bits}` }, { algorithm: `A${bits}KW` })).privateKey,
        gcmkw: (await hsm.keys.get({ label: `gcm${bits}` }, { algorithm: `A${bits}GCMKW` })).privateKey,
        dir: (await hsm.keys.get({ label: `gcm${bits}` }, { algorithm: `A${bits}GCM` })).privateKey,
      }
    }
    uninstall = hsm.installGlobal()
  })
  after(async () => {
    uninstall?.()
    await hsm?.close()
  })

  test('the keys are what jose checks', () => {
    assert.deepEqual(rsa['RSA-OAEP'].privateKey.algorithm.hash, { name: 'SHA-1' })
    assert.deepEqual(ecdh['P-384'].privateKey.algorithm, { name: 'ECDH', namedCurve: 'P-384' })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'X25519' does not exist on type '{}'.
    assert.deepEqual(ecdh.X25519.privateKey.algorithm, { name: 'X25519' })
    assert.deepEqual(secrets[192].kw.algorithm, { name: 'AES-KW', length: 192 })
    assert.ok(secrets[128].dir instanceof TokenCryptoKey)
  })

  for (const enc of ENCS) {
    test(`RSA-OAEP with ${enc}: jose encrypts to the public key, the token decrypts; tampered fails`, async () => {
      const { privateKey, publicKey } = rsa['RSA-OAEP']
      const jwe = await new CompactEncrypt(plaintext).setProtectedHeader({ alg: 'RSA-OAEP', enc }).encrypt(publicKey)
      const { plaintext: out, protectedHeader } = await compactDecrypt(jwe, privateKey)
      assert.deepEqual(out, plaintext)
      assert.equal(protectedHeader.enc, enc)
      await assertTamperedFail(jwe, privateKey)
    })

    for (const curve of CURVES) {
      test(`ECDH-ES(+A*KW) on ${curve} with ${enc}`, async () => {
        const { privateKey, publicKey } = ecdh[curve]
        for (const kw of KW) {
          const alg = `ECDH-ES${kw}`
          const jwe = await new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc }).encrypt(publicKey)
          assert.deepEqual((await compactDecrypt(jwe, privateKey)).plaintext, plaintext, alg)
          await assertTamperedFail(jwe, privateKey)
        }
      })
    }

    test(`A*KW, A*GCMKW and dir with ${enc}: token keys both ways, and the same keys in software`, async () => {
      for (const bits of [128, 192, 256]) {
        const { value, kw, gcmkw, dir } = secrets[bits]
        const cases = [
          [`A${bits}KW`, kw, 'AES-KW'],
          [`A${bits}GCMKW`, gcmkw, 'AES-GCM'],
        ]
        if (enc === `A${bits}GCM`) cases.push(['dir', dir, 'AES-GCM'])
        for (const [alg, tokenKey, name] of cases) {
          const software = await node.importKey(
            'raw',
            value,
            name,
            false,
            alg === 'dir' ? ['encrypt', 'decrypt'] : name === 'AES-KW' ? ['wrapKey', 'unwrapKey'] : ['encrypt', 'decrypt'],
          )
          const ours = await new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc }).encrypt(tokenKey)
          const theirs = await new CompactEncrypt(plaintext).setProtectedHeader({ alg, enc }).encrypt(software)
          assert.deepEqual((await compactDecrypt(ours, software)).plaintext, plaintext, `${alg}: ours by software`)
          assert.deepEqual((await compactDecrypt(theirs, tokenKey)).plaintext, plaintext, `${alg}: software's by the token`)
          await assertTamperedFail(theirs, tokenKey)
        }
      }
    })
  }

  test('jwtDecrypt, flattenedDecrypt and generalDecrypt with token keys', async () => {
    const { privateKey, publicKey } = ecdh['P-256']
    const jwt = await new EncryptJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ECDH-ES+A256KW', enc: 'A256GCM' }).setIssuedAt().setExpirationTime('5m').encrypt(publicKey)
    assert.equal((await jwtDecrypt(jwt, privateKey)).payload.sub, 'alice')
    const jwtOurs = await new EncryptJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(secrets[256].dir)
    assert.equal((await jwtDecrypt(jwtOurs, secrets[256].dir)).payload.sub, 'bob')
    const flattened = await new FlattenedEncrypt(plaintext).setProtectedHeader({ alg: 'A128KW', enc: 'A128CBC-HS256' }).encrypt(secrets[128].kw)
    assert.deepEqual((await flattenedDecrypt(flattened, secrets[128].kw)).plaintext, plaintext)
    const general = await new GeneralEncrypt(plaintext)
      .setProtectedHeader({ enc: 'A128GCM' })
      .addRecipient(rsa['RSA-OAEP'].publicKey)
      .setUnprotectedHeader({ alg: 'RSA-OAEP' })
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'X25519' does not exist on type '{}'.
      .addRecipient(ecdh.X25519.publicKey)
      .setUnprotectedHeader({ alg: 'ECDH-ES+A128KW' })
      .encrypt()
    assert.deepEqual((await generalDecrypt(general, rsa['RSA-OAEP'].privateKey)).plaintext, plaintext)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'X25519' does not exist on type '{}'.
    assert.deepEqual((await generalDecrypt(general, ecdh.X25519.privateKey)).plaintext, plaintext)
  })

  test('what cannot be: dir with A*CBC-HS* takes raw bytes in jose; RSA-OAEP-256 on SoftHSM fails when the key is handed out', async () => {
    await assert.rejects(new CompactEncrypt(plaintext).setProtectedHeader({ alg: 'dir', enc: 'A128CBC-HS256' }).encrypt(secrets[128].dir), TypeError)
    await assert.rejects(hsm.keys.get({ label: 'rsa-oaep' }, { algorithm: 'RSA-OAEP-256' }), { name: 'NotSupportedError' })
    // A key handed out for another algorithm is refused by jose before the token is asked.
    const jwe = await new CompactEncrypt(plaintext).setProtectedHeader({ alg: 'A256KW', enc: 'A256GCM' }).encrypt(secrets[256].kw)
    await assert.rejects(compactDecrypt(jwe, secrets[128].kw))
  })

  test('the JWKS publishes the decryption keys with use "enc" (and the alg of a key that serves one)', async () => {
    const { keys } = await hsm.jwks()
    const rsaJwk = keys.find((k) => k.kty === 'RSA')
    assert.equal(rsaJwk.use, 'enc')
    assert.equal(rsaJwk.alg, 'RSA-OAEP')
    const x = keys.find((k) => k.crv === 'X25519')
    // An ECDH key serves ECDH-ES and its +A*KW: no one alg is published, as for RSA signing keys.
    assert.deepEqual([x.use, x.alg], ['enc', undefined])
    // jose encrypts to a published key; the token decrypts.
    const jwe = await new CompactEncrypt(plaintext).setProtectedHeader({ alg: 'ECDH-ES+A128KW', enc: 'A128GCM', kid: x.kid }).encrypt(await jose.importJWK(x, 'ECDH-ES+A128KW'))
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'X25519' does not exist on type '{}'.
    assert.deepEqual((await compactDecrypt(jwe, ecdh.X25519.privateKey)).plaintext, plaintext)
  })
})
