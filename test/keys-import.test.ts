// Keys brought to the token with hsm.subtle.importKey: they sign exactly as Node signs with the same
// key, never export, and what lands on the token is read back by another process (raw binding).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash, createHmac, generateKeyPairSync, randomBytes, sign as nodeSign, verify as nodeVerify, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const TOKEN = 'imp'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
const { Pkcs11Crypto, TokenCryptoKey } = await import('pkcs11-webcrypto')

const RAW = fileURLToPath(new URL('./helpers/raw-attributes.cjs', import.meta.url))
function onToken(label) {
  return JSON.parse(execFileSync(process.execPath, [RAW, softhsm.module, TOKEN, PIN, label], { env: softhsm.env }).toString())
}
const byClass = (objects, cls) => objects.filter((o) => o.class === cls)
const sha1 = (bytes) => createHash('sha1').update(bytes).digest('hex')
const data = new TextEncoder().encode('imported into the token')

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsa2 = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ed = generateKeyPairSync('ed25519')
const p256 = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' })
const p521 = generateKeyPairSync('ec', { namedCurve: 'P-521' })
const pkcs8 = (pair) => pair.privateKey.export({ format: 'der', type: 'pkcs8' })
const jwkOf = (pair) => pair.privateKey.export({ format: 'jwk' })

/** The private key on the token is sensitive, not extractable, with the given flags and id. */
// @ts-expect-error TS2339 (converted from JavaScript): Property 'id' does not exist on type '{ sign?: boolean; }'.
function assertStoredPrivate(label, { id, sign = true } = {}) {
  const objects = onToken(label)
  const [priv] = byClass(objects, 'private')
  assert.ok(priv, `a private-key object "${label}" is on the token`)
  assert.equal(priv.token, true)
  assert.equal(priv.sensitive, true)
  assert.equal(priv.extractable, false)
  assert.equal(priv.sign, sign)
  assert.equal(priv.decrypt, false)
  assert.equal(priv.derive, false)
  assert.equal(priv.value, undefined)
  if (id) assert.equal(priv.id, id)
  return objects
}

describe('hsm.subtle.importKey into the token', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
  })
  after(() => hsm?.close())

  test('RSASSA-PKCS1-v1_5 pkcs8: signs exactly as Node; not exportable; id = SHA-1 of the modulus', async () => {
    const key = await hsm.subtle.importKey('pkcs8', pkcs8(rsa), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', label: 'imp-rsa', persistent: true }, false, ['sign'])
    assert.ok(key instanceof TokenCryptoKey)
    assert.equal(key.type, 'private')
    assert.equal(key.extractable, false)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'modulusLength' does not exist on type 'KeyAlgorithm'.
    assert.equal(key.algorithm.modulusLength, 2048)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicExponent' does not exist on type 'KeyAlgorithm'.
    assert.deepEqual([...key.algorithm.publicExponent], [1, 0, 1])
    assert.deepEqual(key.usages, ['sign'])
    assert.deepEqual(Buffer.from(await hsm.subtle.sign('RSASSA-PKCS1-v1_5', key, data)), nodeSign('sha256', data, rsa.privateKey))
    for (const format of ['pkcs8', 'jwk']) await assert.rejects(hsm.subtle.exportKey(format, key), { name: 'InvalidAccessError' })
    const modulus = Buffer.from(jwkOf(rsa).n, 'base64url')
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'id' does not exist in type '{ sign?: boolean; }'.
    const objects = assertStoredPrivate('imp-rsa', { id: sha1(modulus) })
    assert.equal(byClass(objects, 'private')[0].modulus, modulus.toString('hex'))
    const [pub] = byClass(objects, 'public')
    assert.ok(pub, 'the public half is stored too')
    assert.equal(pub.modulus, modulus.toString('hex'))
    // keys.get finds it, with its public key.
    const found = await hsm.keys.get({ label: 'imp-rsa' }, { algorithm: 'RS384' })
    assert.deepEqual(Buffer.from(await webcrypto.subtle.exportKey('spki', found.publicKey)), rsa.publicKey.export({ format: 'der', type: 'spki' }))
    assert.deepEqual(Buffer.from(await hsm.subtle.sign('RSASSA-PKCS1-v1_5', found.privateKey, data)), nodeSign('sha384', data, rsa.privateKey))
  })

  test('RSASSA-PKCS1-v1_5 jwk (SHA-512): signs exactly as Node; id and label as given', async () => {
    const key = await hsm.subtle.importKey('jwk', jwkOf(rsa2), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-512', label: 'imp-rsa-jwk', id: '0a0b', persistent: true }, false, ['sign'])
    assert.deepEqual(key.algorithm.hash, { name: 'SHA-512' })
    assert.deepEqual(Buffer.from(await hsm.subtle.sign('RSASSA-PKCS1-v1_5', key, data)), nodeSign('sha512', data, rsa2.privateKey))
    await assert.rejects(hsm.subtle.exportKey('jwk', key), { name: 'InvalidAccessError' })
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'id' does not exist in type '{ sign?: boolean; }'.
    const objects = assertStoredPrivate('imp-rsa-jwk', { id: '0a0b' })
    assert.equal(byClass(objects, 'public')[0].id, '0a0b')
  })

  test('RSA-PSS pkcs8: signatures verify with Node', async () => {
    const key = await hsm.subtle.importKey('pkcs8', pkcs8(rsa), { name: 'RSA-PSS', hash: 'SHA-256' }, false, ['sign'])
    const signature = Buffer.from(await hsm.subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, key, data))
    assert.equal(nodeVerify('sha256', data, { key: rsa.publicKey, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: 32 }, signature), true)
  })

  test('Ed25519 pkcs8: signs exactly as Node', async () => {
    const key = await hsm.subtle.importKey('pkcs8', pkcs8(ed), { name: 'Ed25519', label: 'imp-ed', persistent: true }, false, ['sign'])
    assert.equal(key.algorithm.name, 'Ed25519')
    assert.deepEqual(Buffer.from(await hsm.subtle.sign('Ed25519', key, data)), nodeSign(null, data, ed.privateKey))
    await assert.rejects(hsm.subtle.exportKey('pkcs8', key), { name: 'InvalidAccessError' })
    const x = Buffer.from(ed.publicKey.export({ format: 'jwk' }).x, 'base64url')
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'id' does not exist in type '{ sign?: boolean; }'.
    const objects = assertStoredPrivate('imp-ed', { id: sha1(x) })
    assert.equal(byClass(objects, 'private')[0].keyType, 'EC_EDWARDS')
  })

  test('ECDSA pkcs8 (P-521): its 133-byte public point is stored whole (DER long form) and found again', async () => {
    await hsm.subtle.importKey('pkcs8', pkcs8(p521), { name: 'ECDSA', namedCurve: 'P-521', label: 'imp-p521', persistent: true }, false, ['sign'])
    const { privateKey, publicKey } = await hsm.keys.get({ label: 'imp-p521' })
    assert.deepEqual(await webcrypto.subtle.exportKey('jwk', publicKey).then(({ x, y }) => ({ x, y })), (({ x, y }) => ({ x, y }))(p521.publicKey.export({ format: 'jwk' })))
    const signature = Buffer.from(await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-512' }, privateKey, data))
    assert.equal(nodeVerify('sha512', data, { key: p521.publicKey, dsaEncoding: 'ieee-p1363' }, signature), true)
  })

  test('ECDSA pkcs8 (P-384) and jwk (P-256): signatures verify with Node', async () => {
    const k384 = await hsm.subtle.importKey('pkcs8', pkcs8(p384), { name: 'ECDSA', namedCurve: 'P-384', label: 'imp-p384', persistent: true }, false, ['sign'])
    const s384 = Buffer.from(await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-384' }, k384, data))
    assert.equal(s384.length, 96)
    assert.equal(nodeVerify('sha384', data, { key: p384.publicKey, dsaEncoding: 'ieee-p1363' }, s384), true)
    assert.equal(nodeVerify('sha384', Buffer.from('other'), { key: p384.publicKey, dsaEncoding: 'ieee-p1363' }, s384), false)
    const point = Buffer.from(p384.publicKey.export({ format: 'der', type: 'spki' })).subarray(-97)
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'id' does not exist in type '{ sign?: boolean; }'.
    assertStoredPrivate('imp-p384', { id: sha1(point) })

    const k256 = await hsm.subtle.importKey('jwk', jwkOf(p256), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])
    const s256 = Buffer.from(await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, k256, data))
    assert.equal(nodeVerify('sha256', data, { key: p256.publicKey, dsaEncoding: 'ieee-p1363' }, s256), true)
    await assert.rejects(hsm.subtle.exportKey('jwk', k256), { name: 'InvalidAccessError' })
  })

  test('HMAC raw and jwk: equal to createHmac; not exportable; stored sensitive', async () => {
    const secret = randomBytes(48)
    const key = await hsm.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256', label: 'imp-hmac', persistent: true }, false, ['sign', 'verify'])
    assert.equal(key.type, 'secret')
    assert.equal(key.algorithm.length, 384)
    const mac = Buffer.from(await hsm.subtle.sign('HMAC', key, data))
    assert.deepEqual(mac, createHmac('sha256', secret).update(data).digest())
    assert.equal(await hsm.subtle.verify('HMAC', key, mac, data), true)
    await assert.rejects(hsm.subtle.exportKey('raw', key), { name: 'InvalidAccessError' })
    const [stored] = onToken('imp-hmac')
    assert.equal(stored.class, 'secret')
    assert.equal(stored.keyType, 'GENERIC_SECRET')
    assert.equal(stored.valueLen, 48)
    assert.equal(stored.sensitive, true)
    assert.equal(stored.extractable, false)
    assert.equal(stored.value, undefined)
    assert.equal(stored.sign, true)
    assert.equal(stored.verify, true)
    assert.equal(stored.encrypt, false)

    const other = randomBytes(64)
    const fromJwk = await hsm.subtle.importKey('jwk', { kty: 'oct', k: other.toString('base64url') }, { name: 'HMAC', hash: 'SHA-512' }, false, ['sign'])
    assert.deepEqual(Buffer.from(await hsm.subtle.sign('HMAC', fromJwk, data)), createHmac('sha512', other).update(data).digest())
  })

  test('HMAC raw with extractable=true exports its value back', async () => {
    const secret = randomBytes(32)
    const key = await hsm.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256', label: 'imp-hmac-x', persistent: true }, true, ['sign'])
    assert.equal(key.extractable, true)
    assert.deepEqual(Buffer.from(await hsm.subtle.exportKey('raw', key)), secret)
    const [stored] = onToken('imp-hmac-x')
    assert.equal(stored.extractable, true)
    assert.equal(stored.sensitive, false)
  })

  test('AES raw: stored as a sensitive AES key with the given usages', async () => {
    const key = await hsm.subtle.importKey('raw', randomBytes(32), { name: 'AES-GCM', label: 'imp-aes', persistent: true }, false, ['encrypt', 'decrypt'])
    assert.equal(key.type, 'secret')
    assert.equal(key.algorithm.length, 256)
    const [stored] = onToken('imp-aes')
    assert.equal(stored.keyType, 'AES')
    assert.equal(stored.valueLen, 32)
    assert.equal(stored.sensitive, true)
    assert.equal(stored.encrypt, true)
    assert.equal(stored.decrypt, true)
    assert.equal(stored.sign, false)
    await assert.rejects(hsm.subtle.exportKey('raw', key), { name: 'InvalidAccessError' })
  })

  test('public keys (spki, jwk): a usable public CryptoKey and a public-key object on the token', async () => {
    const spki = p256.publicKey.export({ format: 'der', type: 'spki' })
    const ecPublic = await hsm.subtle.importKey('spki', spki, { name: 'ECDSA', namedCurve: 'P-256', label: 'imp-pub-ec', persistent: true }, true, ['verify'])
    assert.equal(ecPublic.type, 'public')
    const signature = nodeSign('sha256', data, { key: p256.privateKey, dsaEncoding: 'ieee-p1363' })
    assert.equal(await hsm.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ecPublic, signature, data), true)
    assert.equal(await hsm.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ecPublic, signature, Buffer.from('other')), false)
    const ec = onToken('imp-pub-ec')
    assert.deepEqual(
      ec.map((o) => o.class),
      ['public'],
    )
    assert.equal(ec[0].keyType, 'EC')
    assert.equal(ec[0].token, true)
    const point = Buffer.from(spki).subarray(-65)
    assert.equal(ec[0].ecPoint, Buffer.concat([Buffer.from([0x04, 65]), point]).toString('hex'))
    assert.equal(ec[0].id, sha1(point))

    const rsaJwk = rsa2.publicKey.export({ format: 'jwk' })
    const rsaPublic = await hsm.subtle.importKey('jwk', rsaJwk, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', label: 'imp-pub-rsa', persistent: true }, true, ['verify'])
    assert.equal(rsaPublic.type, 'public')
    assert.equal(await hsm.subtle.verify('RSASSA-PKCS1-v1_5', rsaPublic, nodeSign('sha256', data, rsa2.privateKey), data), true)
    const [stored] = onToken('imp-pub-rsa')
    assert.equal(stored.class, 'public')
    assert.equal(stored.modulus, Buffer.from(rsaJwk.n, 'base64url').toString('hex'))
    assert.equal(stored.publicExponent, '010001')
  })

  test('bad input: DataError for the wrong kind of key, garbage, or the wrong curve; nothing is stored', async () => {
    const store = { label: 'bad', persistent: true }
    await assert.rejects(hsm.subtle.importKey('pkcs8', pkcs8(p256), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', ...store }, false, ['sign']), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('pkcs8', pkcs8(rsa), { name: 'ECDSA', namedCurve: 'P-256', ...store }, false, ['sign']), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('pkcs8', pkcs8(ed), { name: 'ECDSA', namedCurve: 'P-256', ...store }, false, ['sign']), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('pkcs8', randomBytes(100), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', ...store }, false, ['sign']), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('spki', Buffer.from('not a key at all'), { name: 'ECDSA', namedCurve: 'P-256', ...store }, true, ['verify']), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('jwk', jwkOf(p384), { name: 'ECDSA', namedCurve: 'P-256', ...store }, false, ['sign']), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('jwk', p384.publicKey.export({ format: 'jwk' }), { name: 'ECDSA', namedCurve: 'P-256', ...store }, true, ['verify']), {
      name: 'DataError',
    })
    // Usages the key cannot have: SyntaxError, as for generateKey.
    await assert.rejects(hsm.subtle.importKey('pkcs8', pkcs8(p256), { name: 'ECDSA', namedCurve: 'P-256', ...store }, false, ['verify']), { name: 'SyntaxError' })
    assert.deepEqual(onToken('bad'), [])
  })

  test("a malformed EC jwk (bad coordinates): DataError, as Node's own importKey says", async () => {
    const bad = { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', d: 'AAAA' }
    await assert.rejects(webcrypto.subtle.importKey('jwk', bad, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('jwk', bad, { name: 'ECDSA', namedCurve: 'P-256', label: 'bad-jwk', persistent: true }, false, ['sign']), { name: 'DataError' })
    assert.deepEqual(onToken('bad-jwk'), [])
  })
})
