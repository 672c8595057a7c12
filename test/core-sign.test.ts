// Every signature algorithm signs on a fresh SoftHSM token, and Node's own WebCrypto verifies it
// on the exported public key; deterministic algorithms match Node's signature byte for byte.
import assert from 'node:assert/strict'
import { createHmac, sign as nodeSign, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'

const softhsm = freshSoftHsm()
softhsm.initToken('core')
const keys = provisionTestKeys(softhsm, 'core')
softhsm.pkcs11Tool(['--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:edwards25519', '--label', 'opensc-ed', '--id', '11'])
softhsm.pkcs11Tool(['--login', '--pin', PIN, '--keypairgen', '--key-type', 'rsa:2048', '--label', 'opensc-rsa', '--id', '12'])
softhsm.pkcs11Tool(['--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'opensc-p256', '--id', '13'])

const { Pkcs11Crypto, TokenCryptoKey } = await import('pkcs11-webcrypto')
const data = new TextEncoder().encode('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9')

const CASES = [
  { label: 'rsa', params: { name: 'RSASSA-PKCS1-v1_5' }, alg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } },
  { label: 'rsa', params: { name: 'RSASSA-PKCS1-v1_5' }, alg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' } },
  { label: 'rsa', params: { name: 'RSASSA-PKCS1-v1_5' }, alg: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-512' } },
  { label: 'rsa', params: { name: 'RSA-PSS', saltLength: 32 }, alg: { name: 'RSA-PSS', hash: 'SHA-256' } },
  { label: 'rsa', params: { name: 'RSA-PSS', saltLength: 48 }, alg: { name: 'RSA-PSS', hash: 'SHA-384' } },
  { label: 'rsa', params: { name: 'RSA-PSS', saltLength: 64 }, alg: { name: 'RSA-PSS', hash: 'SHA-512' } },
  { label: 'p256', params: { name: 'ECDSA', hash: 'SHA-256' }, alg: { name: 'ECDSA' } },
  { label: 'p384', params: { name: 'ECDSA', hash: 'SHA-384' }, alg: { name: 'ECDSA' } },
  { label: 'p521', params: { name: 'ECDSA', hash: 'SHA-512' }, alg: { name: 'ECDSA' } },
  { label: 'p256', params: { name: 'ECDSA', hash: { name: 'SHA-512' } }, alg: 'ES256' },
  { label: 'ed25519', params: { name: 'Ed25519' }, alg: 'EdDSA' },
  { label: 'opensc-ed', params: 'Ed25519', alg: undefined },
  { label: 'opensc-rsa', params: 'RSASSA-PKCS1-v1_5', alg: undefined },
  { label: 'opensc-p256', params: { name: 'ECDSA', hash: 'SHA-256' }, alg: undefined },
]

describe('signing on the token, verified by Node', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'core' }, pin: PIN })
  })
  after(() => hsm.close())

  for (const { label, params, alg } of CASES) {
    test(`${label} ${JSON.stringify(params)}`, async () => {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      assert.equal(Object.prototype.toString.call(privateKey), '[object CryptoKey]')
      assert.equal(privateKey.type, 'private')
      assert.equal(privateKey.extractable, false)
      assert.ok(privateKey instanceof TokenCryptoKey)
      const signature = await hsm.subtle.sign(params, privateKey, data)
      const exported = await hsm.subtle.exportKey('spki', publicKey)
      const nodeKey = await webcrypto.subtle.importKey('spki', exported, publicKey.algorithm, true, ['verify'])
      assert.equal(await webcrypto.subtle.verify(params, nodeKey, signature, data), true)
      assert.equal(await webcrypto.subtle.verify(params, nodeKey, signature, new TextEncoder().encode('other')), false)
    })
  }

  test("RSASSA-PKCS1-v1_5 signatures equal Node's (known answer)", async () => {
    for (const hash of ['SHA-256', 'SHA-384', 'SHA-512']) {
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'rsa' does not exist on type '{}'.
      const { privateKey } = await hsm.keys.get({ id: keys.rsa.id }, { algorithm: { name: 'RSASSA-PKCS1-v1_5', hash } })
      const ours = Buffer.from(await hsm.subtle.sign('RSASSA-PKCS1-v1_5', privateKey, data))
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'rsa' does not exist on type '{}'.
      assert.deepEqual(ours, nodeSign(hash.replace('-', '').toLowerCase(), data, keys.rsa.privateKey))
    }
  })

  test("Ed25519 signatures equal Node's (known answer)", async () => {
    const { privateKey } = await hsm.keys.get({ label: 'ed25519' })
    const ours = Buffer.from(await hsm.subtle.sign('Ed25519', privateKey, data))
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'ed25519' does not exist on type '{}'.
    assert.deepEqual(ours, nodeSign(null, data, keys.ed25519.privateKey))
  })

  test("HMAC with a token secret key equals Node's HMAC, and verifies on the token", async () => {
    for (const [alg, hash] of [
      ['HS256', 'sha256'],
      ['HS384', 'sha384'],
      ['HS512', 'sha512'],
    ]) {
      const { privateKey, publicKey } = await hsm.keys.get({ label: 'hmac' }, { algorithm: alg })
      assert.equal(privateKey.type, 'secret')
      assert.equal(publicKey, undefined)
      assert.deepEqual(privateKey.usages, ['sign', 'verify'])
      const mac = await hsm.subtle.sign('HMAC', privateKey, data)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
      assert.deepEqual(Buffer.from(mac), createHmac(hash, keys.hmac.secret).update(data).digest())
      assert.equal(await hsm.subtle.verify('HMAC', privateKey, mac, data), true)
      const wrong = Buffer.from(mac)
      wrong[0] ^= 1
      assert.equal(await hsm.subtle.verify('HMAC', privateKey, wrong, data), false)
    }
  })

  test('one RSA key serves RS256 and PS256', async () => {
    const rs = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'RS256' })
    const ps = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'PS256' })
    assert.equal(rs.privateKey.algorithm.name, 'RSASSA-PKCS1-v1_5')
    assert.equal(ps.privateKey.algorithm.name, 'RSA-PSS')
    assert.deepEqual(rs.privateKey.algorithm.hash, { name: 'SHA-256' })
    assert.equal(rs.privateKey.algorithm.modulusLength, 2048)
    assert.deepEqual([...rs.privateKey.algorithm.publicExponent], [1, 0, 1])
  })

  test("public keys export as spki, jwk and raw; they match Node's", async () => {
    const { publicKey } = await hsm.keys.get({ label: 'p256' })
    const jwk = await hsm.subtle.exportKey('jwk', publicKey)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'p256' does not exist on type '{}'.
    assert.deepEqual({ ...jwk, key_ops: undefined, ext: undefined }, { ...keys.p256.publicKey.export({ format: 'jwk' }), key_ops: undefined, ext: undefined })
    assert.equal((await hsm.subtle.exportKey('raw', publicKey)).byteLength, 65)
    const rsa = await hsm.keys.get({ label: 'rsa' })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'rsa' does not exist on type '{}'.
    assert.deepEqual(Buffer.from(await hsm.subtle.exportKey('spki', rsa.publicKey)), keys.rsa.publicKey.export({ format: 'der', type: 'spki' }))
  })

  test('key selectors: id, label, both, and pkcs11: URIs', async () => {
    const byId = await hsm.keys.get({ id: '02' })
    const byUri = await hsm.keys.get('pkcs11:id=%02')
    const byObject = await hsm.keys.get('pkcs11:object=p256;type=private')
    const byBoth = await hsm.keys.get({ id: '02', label: 'p256' })
    for (const found of [byUri, byObject, byBoth]) assert.equal(found.id, byId.id)
    assert.equal(byId.label, 'p256')
  })

  test('keys.list describes every key with the algorithms the token can do', async () => {
    const list = await hsm.keys.list()
    const byLabel = Object.fromEntries(list.map((k) => [k.label, k]))
    assert.deepEqual(byLabel.rsa.algorithms, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'])
    assert.equal(byLabel.rsa.bits, 2048)
    assert.deepEqual(byLabel.p384.algorithms, ['ES384'])
    assert.equal(byLabel.p521.curve, 'P-521')
    assert.deepEqual(byLabel.ed25519.algorithms, ['EdDSA'])
    assert.deepEqual(byLabel['opensc-ed'].algorithms, ['EdDSA'])
    assert.deepEqual(byLabel.hmac.algorithms, ['HS256', 'HS384', 'HS512'])
    assert.equal(byLabel.hmac.kty, 'oct')
    assert.equal(byLabel.rsa.certificate, false)
  })

  test('getRandomValues draws from the token', () => {
    const a = hsm.getRandomValues(new Uint8Array(32))
    const b = hsm.getRandomValues(new Uint32Array(8))
    assert.notDeepEqual(Buffer.from(a), Buffer.alloc(32))
    assert.notDeepEqual(Buffer.from(b.buffer), Buffer.from(a))
    assert.throws(() => hsm.getRandomValues(new Float32Array(4)), { name: 'TypeMismatchError' })
    assert.throws(() => hsm.getRandomValues(new Uint8Array(65537)), { name: 'QuotaExceededError' })
  })

  test('digest and non-token keys go to Node unchanged', async () => {
    const ours = await hsm.subtle.digest('SHA-256', data)
    assert.deepEqual(Buffer.from(ours), Buffer.from(await webcrypto.subtle.digest('SHA-256', data)))
    const soft = await hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
    const sig = await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, soft.privateKey, data)
    assert.equal(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, soft.publicKey, sig, data), true)
  })
})
