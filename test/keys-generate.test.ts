// Keys generated on the token (hsm.subtle.generateKey, hsm.keys.generate): what lands on the token
// is read back independently (raw pkcs11js binding in another process), signatures are checked by
// Node, certificates by OpenSSL.
import assert from 'node:assert/strict'
import { execFile as execFileCb, execFileSync } from 'node:child_process'
import { createHash, createHmac, createPublicKey, webcrypto, X509Certificate as NodeX509 } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const execFile = promisify(execFileCb)
const TOKEN = 'gen'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
const { Pkcs11Crypto, TokenCryptoKey, KeyNotFoundError } = await import('pkcs11-webcrypto')

const RAW = fileURLToPath(new URL('./helpers/raw-attributes.cjs', import.meta.url))
/** The objects with CKA_LABEL `label` as another process sees them (token objects only). */
function onToken(label) {
  return JSON.parse(execFileSync(process.execPath, [RAW, softhsm.module, TOKEN, PIN, label], { env: softhsm.env }).toString())
}
const byClass = (objects, cls) => objects.filter((o) => o.class === cls)

/** CKA_EC_POINT is a DER OCTET STRING around the point. */
function unwrapOctetString(hex) {
  const b = Buffer.from(hex, 'hex')
  assert.equal(b[0], 0x04, 'CKA_EC_POINT is an OCTET STRING')
  return b[1] & 0x80 ? b.subarray(2 + (b[1] & 0x7f)) : b.subarray(2)
}

const data = new TextEncoder().encode('generated on the token')
const sha1 = (bytes) => createHash('sha1').update(bytes).digest('hex')

/** What Node says the public key value is (RSA modulus, EC point, Ed25519 key), from the exported key. */
async function publicValue(publicKey) {
  if (publicKey.algorithm.name.startsWith('RSA')) {
    const jwk = await webcrypto.subtle.exportKey('jwk', publicKey)
    return Buffer.from(jwk.n, 'base64url')
  }
  return Buffer.from(await webcrypto.subtle.exportKey('raw', publicKey))
}

async function verifyWithNode(params, publicKey, signature) {
  const spki = await webcrypto.subtle.exportKey('spki', publicKey)
  const nodeKey = await webcrypto.subtle.importKey('spki', spki, publicKey.algorithm, true, ['verify'])
  assert.equal(await webcrypto.subtle.verify(params, nodeKey, signature, data), true, 'Node verifies the token signature')
  assert.equal(await webcrypto.subtle.verify(params, nodeKey, signature, new TextEncoder().encode('other')), false)
}

const E = new Uint8Array([1, 0, 1])
const PAIRS = [
  {
    algorithm: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: E, hash: 'SHA-256' },
    usages: ['sign', 'verify'],
    sign: 'RSASSA-PKCS1-v1_5',
    flags: { sign: true, decrypt: false, derive: false, unwrap: false },
    pub: { verify: true, encrypt: false },
  },
  {
    algorithm: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 4096, publicExponent: E, hash: 'SHA-512' },
    usages: ['sign', 'verify'],
    sign: 'RSASSA-PKCS1-v1_5',
    flags: { sign: true, decrypt: false, derive: false },
    pub: { verify: true },
  },
  {
    algorithm: { name: 'RSA-PSS', modulusLength: 2048, publicExponent: E, hash: 'SHA-256' },
    usages: ['sign', 'verify'],
    sign: { name: 'RSA-PSS', saltLength: 32 },
    flags: { sign: true, decrypt: false, derive: false },
    pub: { verify: true },
  },
  {
    algorithm: { name: 'RSA-PSS', modulusLength: 3072, publicExponent: E, hash: 'SHA-384' },
    usages: ['sign', 'verify'],
    sign: { name: 'RSA-PSS', saltLength: 48 },
    flags: { sign: true, decrypt: false, derive: false },
    pub: { verify: true },
  },
  {
    algorithm: { name: 'RSA-OAEP', modulusLength: 2048, publicExponent: E, hash: 'SHA-256' },
    usages: ['encrypt', 'decrypt'],
    flags: { sign: false, decrypt: true, unwrap: false, derive: false },
    pub: { encrypt: true, verify: false, wrap: false },
  },
  {
    algorithm: { name: 'RSA-OAEP', modulusLength: 3072, publicExponent: E, hash: 'SHA-256' },
    usages: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
    flags: { sign: false, decrypt: true, unwrap: true },
    pub: { encrypt: true, wrap: true },
  },
  {
    algorithm: { name: 'ECDSA', namedCurve: 'P-256' },
    usages: ['sign', 'verify'],
    sign: { name: 'ECDSA', hash: 'SHA-256' },
    flags: { sign: true, decrypt: false, derive: false, unwrap: false },
    pub: { verify: true },
  },
  {
    algorithm: { name: 'ECDSA', namedCurve: 'P-384' },
    usages: ['sign', 'verify'],
    sign: { name: 'ECDSA', hash: 'SHA-384' },
    flags: { sign: true, decrypt: false, derive: false },
    pub: { verify: true },
  },
  {
    algorithm: { name: 'ECDSA', namedCurve: 'P-521' },
    usages: ['sign', 'verify'],
    sign: { name: 'ECDSA', hash: 'SHA-512' },
    flags: { sign: true, decrypt: false, derive: false },
    pub: { verify: true },
  },
  { algorithm: { name: 'ECDH', namedCurve: 'P-256' }, usages: ['deriveBits'], flags: { derive: true, sign: false, decrypt: false } },
  { algorithm: { name: 'ECDH', namedCurve: 'P-384' }, usages: ['deriveKey', 'deriveBits'], flags: { derive: true, sign: false, decrypt: false } },
  { algorithm: { name: 'ECDH', namedCurve: 'P-521' }, usages: ['deriveKey'], flags: { derive: true, sign: false, decrypt: false } },
  { algorithm: { name: 'Ed25519' }, usages: ['sign', 'verify'], sign: 'Ed25519', flags: { sign: true, decrypt: false, derive: false }, pub: { verify: true } },
]

const SECRETS = [
  {
    algorithm: { name: 'HMAC', hash: 'SHA-256' },
    usages: ['sign', 'verify'],
    keyType: 'GENERIC_SECRET',
    bytes: 64,
    flags: { sign: true, verify: true, encrypt: false, decrypt: false },
  },
  { algorithm: { name: 'HMAC', hash: 'SHA-512', length: 256 }, usages: ['sign'], keyType: 'GENERIC_SECRET', bytes: 32, flags: { sign: true, verify: false, encrypt: false } },
  { algorithm: { name: 'AES-GCM', length: 128 }, usages: ['encrypt', 'decrypt'], keyType: 'AES', bytes: 16, flags: { encrypt: true, decrypt: true, sign: false, wrap: false } },
  {
    algorithm: { name: 'AES-KW', length: 256 },
    usages: ['wrapKey', 'unwrapKey'],
    keyType: 'AES',
    bytes: 32,
    flags: { wrap: true, unwrap: true, encrypt: false, decrypt: false, sign: false },
  },
  { algorithm: { name: 'AES-CBC', length: 256 }, usages: ['encrypt', 'decrypt'], keyType: 'AES', bytes: 32, flags: { encrypt: true, decrypt: true } },
]

const caseName = ({ algorithm }) => [algorithm.name, algorithm.namedCurve, algorithm.modulusLength, algorithm.length, algorithm.hash].filter(Boolean).join('-')

describe('hsm.subtle.generateKey on the token', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
  })
  after(() => hsm?.close())

  for (const c of PAIRS) {
    const label = `pair-${caseName(c)}`
    test(`${caseName(c)} ${JSON.stringify(c.usages)}: attributes, default CKA_ID, usage flags${c.sign ? ', sign + verify' : ''}`, async () => {
      const { privateKey, publicKey } = await hsm.subtle.generateKey({ ...c.algorithm, label, persistent: true }, false, c.usages)
      assert.ok(privateKey instanceof TokenCryptoKey)
      assert.equal(privateKey.type, 'private')
      assert.equal(privateKey.extractable, false)
      assert.equal(privateKey.algorithm.name, c.algorithm.name)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'modulusLength' does not exist on type 'KeyAlgorithm'.
      if (c.algorithm.modulusLength) assert.equal(privateKey.algorithm.modulusLength, c.algorithm.modulusLength)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'namedCurve' does not exist on type 'KeyAlgorithm'.
      if (c.algorithm.namedCurve) assert.equal(privateKey.algorithm.namedCurve, c.algorithm.namedCurve)
      assert.equal(publicKey.type, 'public')
      assert.equal(publicKey.extractable, true)

      const objects = onToken(label)
      const [priv] = byClass(objects, 'private')
      const [pub] = byClass(objects, 'public')
      assert.ok(priv, 'a private-key object with the label is on the token')
      assert.ok(pub, 'a public-key object with the label is on the token')
      assert.equal(objects.length, 2)
      const keyType = c.algorithm.name.startsWith('RSA') ? 'RSA' : c.algorithm.name === 'Ed25519' ? 'EC_EDWARDS' : 'EC'
      assert.equal(priv.keyType, keyType)
      assert.equal(pub.keyType, keyType)
      assert.equal(priv.token, true)
      assert.equal(priv.private, true)
      assert.equal(priv.sensitive, true, 'CKA_SENSITIVE')
      assert.equal(priv.extractable, false, 'CKA_EXTRACTABLE')
      assert.equal(pub.token, true)
      for (const [flag, value] of Object.entries(c.flags)) assert.equal(priv[flag], value, `private CKA_${flag.toUpperCase()}`)
      for (const [flag, value] of Object.entries(c.pub ?? {})) assert.equal(pub[flag], value, `public CKA_${flag.toUpperCase()}`)

      // CKA_ID = SHA-1 of the public key value, as Node sees the public key.
      const value = await publicValue(publicKey)
      if (c.algorithm.name.startsWith('RSA')) {
        assert.equal(pub.modulus, value.toString('hex'), "public CKA_MODULUS is the returned public key's")
        assert.equal(priv.modulus, value.toString('hex'))
        assert.equal(Buffer.from(pub.modulus, 'hex').length * 8, c.algorithm.modulusLength)
        assert.equal(pub.publicExponent, '010001')
      } else {
        assert.deepEqual(unwrapOctetString(pub.ecPoint), value, "public CKA_EC_POINT is the returned public key's")
      }
      assert.equal(priv.id, sha1(value), 'private CKA_ID = SHA-1 of the public key')
      assert.equal(pub.id, priv.id)

      if (c.sign) {
        const signature = await hsm.subtle.sign(c.sign, privateKey, data)
        await verifyWithNode(c.sign, publicKey, signature)
      }
      await assert.rejects(hsm.subtle.exportKey('pkcs8', privateKey), { name: 'InvalidAccessError' })
      await assert.rejects(hsm.subtle.exportKey('jwk', privateKey), { name: 'InvalidAccessError' })
    })
  }

  for (const c of SECRETS) {
    const label = `secret-${caseName(c)}`
    test(`${caseName(c)} ${JSON.stringify(c.usages)}: attributes and usage flags`, async () => {
      const key = await hsm.subtle.generateKey({ ...c.algorithm, label, persistent: true }, false, c.usages)
      assert.ok(key instanceof TokenCryptoKey)
      assert.equal(key.type, 'secret')
      assert.equal(key.extractable, false)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'length' does not exist on type 'KeyAlgorithm'.
      assert.equal(key.algorithm.length, c.bytes * 8)
      const objects = onToken(label)
      assert.equal(objects.length, 1)
      const [secret] = objects
      assert.equal(secret.class, 'secret')
      assert.equal(secret.keyType, c.keyType)
      assert.equal(secret.valueLen, c.bytes)
      assert.equal(secret.token, true)
      assert.equal(secret.sensitive, true)
      assert.equal(secret.extractable, false)
      assert.equal(secret.value, undefined, 'the value cannot be read')
      assert.equal(typeof secret.id, 'string')
      assert.ok(secret.id.length > 0, 'a CKA_ID is set')
      for (const [flag, value] of Object.entries(c.flags)) assert.equal(secret[flag], value, `CKA_${flag.toUpperCase()}`)
      await assert.rejects(hsm.subtle.exportKey('raw', key), { name: 'InvalidAccessError' })
      if (c.usages.includes('verify')) {
        const mac = await hsm.subtle.sign('HMAC', key, data)
        assert.equal(mac.byteLength, 32)
        assert.equal(await hsm.subtle.verify('HMAC', key, mac, data), true)
        const wrong = Buffer.from(mac)
        wrong[3] ^= 0x10
        assert.equal(await hsm.subtle.verify('HMAC', key, wrong, data), false)
      }
    })
  }

  test('CKA_ID and CKA_LABEL are the ones given', async () => {
    const { privateKey } = await hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', label: 'named', id: 'C0FFEE01', persistent: true }, false, ['sign', 'verify'])
    const objects = onToken('named')
    assert.deepEqual(objects.map((o) => o.class).sort(), ['private', 'public'])
    for (const o of objects) {
      assert.equal(o.id, 'c0ffee01')
      assert.equal(o.label, 'named')
    }
    const found = await hsm.keys.get({ id: 'c0ffee01' })
    assert.equal(found.label, 'named')
    const sig = await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data)
    await verifyWithNode({ name: 'ECDSA', hash: 'SHA-256' }, found.publicKey, sig)

    await hsm.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', label: 'named-secret', id: '5ec7', persistent: true }, false, ['sign'])
    const [secret] = onToken('named-secret')
    assert.equal(secret.id, '5ec7')
  })

  test('extractable=true: CKA_EXTRACTABLE true, CKA_SENSITIVE false, and exportKey works (HMAC = createHmac)', async () => {
    const key = await hsm.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', label: 'hmac-extractable', persistent: true }, true, ['sign', 'verify'])
    assert.equal(key.extractable, true)
    const [secret] = onToken('hmac-extractable')
    assert.equal(secret.extractable, true)
    assert.equal(secret.sensitive, false)
    const raw = Buffer.from(await hsm.subtle.exportKey('raw', key))
    assert.equal(raw.length, 64)
    assert.equal(raw.toString('hex'), secret.value, 'exported value = CKA_VALUE read by another process')
    const mac = Buffer.from(await hsm.subtle.sign('HMAC', key, data))
    assert.deepEqual(mac, createHmac('sha256', raw).update(data).digest())
    const jwk = await hsm.subtle.exportKey('jwk', key)
    assert.equal(jwk.kty, 'oct')
    assert.equal(jwk.k, raw.toString('base64url'))

    const aes = await hsm.subtle.generateKey({ name: 'AES-GCM', length: 256, label: 'aes-extractable', persistent: true }, true, ['encrypt', 'decrypt'])
    const aesRaw = Buffer.from(await hsm.subtle.exportKey('raw', aes))
    assert.equal(aesRaw.toString('hex'), onToken('aes-extractable')[0].value)
  })

  test('extractable=true ECDSA: the private key exports and matches its public key', async () => {
    const { privateKey, publicKey } = await hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', label: 'ec-extractable', persistent: true }, true, ['sign', 'verify'])
    const [priv] = byClass(onToken('ec-extractable'), 'private')
    assert.equal(priv.extractable, true)
    assert.equal(priv.sensitive, false)
    const pkcs8 = await hsm.subtle.exportKey('pkcs8', privateKey)
    const nodeKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign'])
    const jwk = await webcrypto.subtle.exportKey('jwk', nodeKey)
    const pub = await webcrypto.subtle.exportKey('jwk', publicKey)
    assert.equal(jwk.x, pub.x)
    assert.equal(jwk.y, pub.y)
    assert.equal(Buffer.from(jwk.d, 'base64url').toString('hex'), priv.value)
  })

  test('persistent keys survive close and reopen; session keys (the default) are gone', async () => {
    const a = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
    // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
    const kept = await a.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', label: 'kept', persistent: true }, false, ['sign', 'verify'])
    // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
    await a.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', label: 'transient' }, false, ['sign', 'verify'])
    // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
    await a.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', label: 'transient-hmac' }, false, ['sign'])
    // Both are there while the instance is open ...
    assert.equal((await a.keys.get({ label: 'transient' })).label, 'transient')
    assert.equal((await a.keys.get({ label: 'transient-hmac' })).privateKey.type, 'secret')
    // ... but only the persistent one is a token object (CKA_TOKEN), seen by another process.
    assert.equal(byClass(onToken('kept'), 'private')[0].token, true)
    assert.deepEqual(onToken('transient'), [])
    assert.deepEqual(onToken('transient-hmac'), [])
    const keptPublic = await webcrypto.subtle.exportKey('spki', kept.publicKey)
    await a.close()

    const b = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
    try {
      const again = await b.keys.get({ label: 'kept' })
      assert.deepEqual(Buffer.from(await webcrypto.subtle.exportKey('spki', again.publicKey)), Buffer.from(keptPublic))
      const sig = await b.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, again.privateKey, data)
      await verifyWithNode({ name: 'ECDSA', hash: 'SHA-256' }, kept.publicKey, sig)
      await assert.rejects(b.keys.get({ label: 'transient' }), KeyNotFoundError)
      await assert.rejects(b.keys.get({ label: 'transient-hmac' }), KeyNotFoundError)
    } finally {
      await b.close()
    }
  })

  test('bad input: NotSupportedError, TypeError, SyntaxError, OperationError; nothing is stored', async () => {
    const store = { label: 'bad', persistent: true }
    await assert.rejects(hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-192', ...store }, false, ['sign', 'verify']), { name: 'NotSupportedError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'ECDH', namedCurve: 'secp256k1', ...store }, false, ['deriveBits']), { name: 'NotSupportedError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', publicExponent: E, hash: 'SHA-256', ...store }, false, ['sign', 'verify']), TypeError)
    await assert.rejects(hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', ...store }, false, ['encrypt']), { name: 'SyntaxError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', ...store }, false, ['sign', 'deriveBits']), { name: 'SyntaxError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', ...store }, false, []), { name: 'SyntaxError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', ...store }, false, []), { name: 'SyntaxError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'AES-GCM', length: 100, ...store }, false, ['encrypt', 'decrypt']), { name: 'OperationError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'FOO', ...store }, false, ['sign']), { name: 'NotSupportedError' })
    assert.deepEqual(onToken('bad'), [])
  })
})

describe('hsm.keys.generate with JOSE names', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
  })
  after(() => hsm?.close())

  const JOSE = [
    ['RS256', { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }],
    ['PS256', { name: 'RSA-PSS', saltLength: 32 }],
    ['ES256', { name: 'ECDSA', hash: 'SHA-256' }],
    ['ES384', { name: 'ECDSA', hash: 'SHA-384' }],
    ['ES512', { name: 'ECDSA', hash: 'SHA-512' }],
    ['EdDSA', { name: 'Ed25519' }],
  ]
  for (const [alg, params] of JOSE) {
    test(`${alg} with a self-signed certificate that OpenSSL verifies; delete removes all three objects`, async () => {
      const label = `jose-${alg}`
      const made = await hsm.keys.generate({ algorithm: alg, label, certificate: { subject: 'CN=x' } })
      assert.equal(made.label, label)
      assert.ok(made.certificate, 'a certificate is returned')
      assert.equal(made.privateKey.extractable, false)
      // The certificate carries the returned public key ...
      const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', made.publicKey))
      assert.deepEqual(Buffer.from(made.certificate.publicKey.rawData), spki)
      const pem = made.certificate.toString('pem')
      const nodeCert = new NodeX509(pem)
      assert.equal(nodeCert.subject, 'CN=x')
      assert.ok(nodeCert.verify(createPublicKey({ key: spki, format: 'der', type: 'spki' })), 'Node verifies the certificate signature')
      // ... and OpenSSL verifies its signature (-check_ss_sig: without it a self-signed leaf's signature is not checked).
      const file = join(softhsm.dir, `${label}.pem`)
      writeFileSync(file, pem)
      const { stdout } = await execFile('openssl', ['verify', '-check_ss_sig', '-CAfile', file, file])
      assert.match(stdout, /: OK/)
      // Persistent by default, with certificate, public and private objects under the key's id.
      const objects = onToken(label)
      assert.deepEqual(objects.map((o) => o.class).sort(), ['certificate', 'private', 'public'])
      for (const o of objects) assert.equal(o.id, made.id)
      assert.ok(objects.every((o) => o.token))
      assert.equal(Buffer.from(objects.find((o) => o.class === 'certificate').value, 'hex').toString('base64'), Buffer.from(made.certificate.rawData).toString('base64'))
      // Signs as the JOSE name says.
      const signature = await hsm.subtle.sign(params, made.privateKey, data)
      await verifyWithNode(params, made.publicKey, signature)
      assert.ok((await hsm.keys.list()).some((k) => k.label === label && k.certificate && k.algorithms.includes(alg)))
      assert.ok((await hsm.certificates.list()).some((c) => c.id === made.id))

      assert.equal(await hsm.keys.delete({ label }), 3)
      assert.deepEqual(onToken(label), [])
      assert.ok(!(await hsm.keys.list()).some((k) => k.label === label || k.id === made.id))
      assert.ok(!(await hsm.certificates.list()).some((c) => c.id === made.id || c.label === label))
      await assert.rejects(hsm.keys.get({ label }), KeyNotFoundError)
    })
  }

  test('a tampered certificate fails OpenSSL verification (the check above can fail)', async () => {
    const made = await hsm.keys.generate({ algorithm: 'ES256', label: 'tamper', certificate: { subject: 'CN=x' } })
    const der = Buffer.from(made.certificate.rawData)
    der[der.length - 3] ^= 0x01
    const file = join(softhsm.dir, 'tampered.pem')
    writeFileSync(file, `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
    await assert.rejects(execFile('openssl', ['verify', '-check_ss_sig', '-CAfile', file, file]), (e) => e.code !== 0)
    await hsm.keys.delete({ label: 'tamper' })
  })

  test('HS256: a secret key, persistent by default; delete removes it', async () => {
    const made = await hsm.keys.generate({ algorithm: 'HS256', label: 'jose-HS256' })
    assert.equal(made.privateKey.type, 'secret')
    assert.equal(made.publicKey, undefined)
    assert.equal(made.certificate, undefined)
    const [secret] = onToken('jose-HS256')
    assert.equal(secret.class, 'secret')
    assert.equal(secret.token, true)
    assert.equal(secret.sensitive, true)
    assert.equal(secret.extractable, false)
    assert.equal(secret.id, made.id)
    const mac = await hsm.subtle.sign('HMAC', made.privateKey, data)
    assert.equal(await hsm.subtle.verify('HMAC', made.privateKey, mac, data), true)
    assert.ok((await hsm.keys.list()).find((k) => k.label === 'jose-HS256').algorithms.includes('HS256'))
    assert.equal(await hsm.keys.delete({ label: 'jose-HS256' }), 1)
    assert.deepEqual(onToken('jose-HS256'), [])
    await assert.rejects(hsm.keys.get({ label: 'jose-HS256' }), KeyNotFoundError)
  })

  test('keys.generate with persistent: false makes session objects', async () => {
    const made = await hsm.keys.generate({ algorithm: 'ES256', label: 'jose-session', persistent: false })
    assert.equal((await hsm.keys.get({ label: 'jose-session' })).id, made.id)
    assert.deepEqual(onToken('jose-session'), [])
  })

  test('keys.list pages with offset and limit', async () => {
    for (let i = 0; i < 30; i++) {
      await hsm.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', label: `page-${String(i).padStart(2, '0')}` }, false, ['sign', 'verify'])
    }
    const all = await hsm.keys.list()
    const pageLabels = all.map((k) => k.label).filter((l) => l.startsWith('page-'))
    assert.equal(pageLabels.length, 30)
    const pages = []
    for (let offset = 0; ; offset += 7) {
      const page = await hsm.keys.list({ offset, limit: 7 })
      if (page.length === 0) break
      pages.push(page)
      assert.ok(pages.length < 100, 'paging ends')
    }
    assert.equal(pages.length, Math.ceil(all.length / 7))
    for (const page of pages.slice(0, -1)) assert.equal(page.length, 7)
    assert.equal(pages.at(-1).length, all.length - 7 * (pages.length - 1))
    const paged = pages.flat()
    assert.deepEqual(
      paged.map((k) => k.id),
      all.map((k) => k.id),
    )
    assert.equal(new Set(paged.map((k) => k.id)).size, paged.length, 'no key twice')
    assert.deepEqual(await hsm.keys.list({ offset: all.length, limit: 7 }), [])
    assert.equal((await hsm.keys.list({ offset: 3, limit: 2 }))[1].id, all[4].id)
  })
})
