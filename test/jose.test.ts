// Issue #3: unmodified jose signs and verifies JWS/JWTs with token keys through the routed
// `globalThis.crypto`, every signature is checked again by OpenSSL, jose operations without token
// keys behave exactly as before, and installGlobal counts its users across tokens.
import assert from 'node:assert/strict'
import { createHmac, createPublicKey } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import * as jose from 'jose'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'
import { opensslVerify } from './helpers/openssl.js'

const {
  SignJWT,
  CompactSign,
  FlattenedSign,
  GeneralSign,
  jwtVerify,
  compactVerify,
  flattenedVerify,
  generalVerify,
  createLocalJWKSet,
  exportJWK,
  exportSPKI,
  calculateJwkThumbprint,
  errors,
  base64url,
  decodeProtectedHeader,
} = jose

const softhsm = freshSoftHsm()
softhsm.initToken('jose')
softhsm.initToken('b')
const keys = provisionTestKeys(softhsm, 'jose')
const keysB = provisionTestKeys(softhsm, 'b')

const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

const NODE_CRYPTO = globalThis.crypto
const enc = new TextEncoder()
const dec = new TextDecoder()
const payload = enc.encode(JSON.stringify({ sub: 'alice', n: 1 }))

// alg -> token key label; opensslAlg is the name the OpenSSL helper knows.
const ASYMMETRIC = [
  ['RS256', 'rsa'],
  ['RS384', 'rsa'],
  ['RS512', 'rsa'],
  ['PS256', 'rsa'],
  ['PS384', 'rsa'],
  ['PS512', 'rsa'],
  ['ES256', 'p256'],
  ['ES384', 'p384'],
  ['ES512', 'p521'],
  ['EdDSA', 'ed25519'],
  ['Ed25519', 'ed25519'],
]
const HMAC = [
  ['HS256', 'sha256'],
  ['HS384', 'sha384'],
  ['HS512', 'sha512'],
]
const opensslAlg = (alg) => (alg === 'Ed25519' ? 'EdDSA' : alg)

/** Every (signingInput, signature) pair of a compact JWS. */
function compactParts(jws) {
  const [h, p, s] = jws.split('.')
  return { signingInput: `${h}.${p}`, signature: base64url.decode(s) }
}

/** Verifies with OpenSSL on the SPKI PEM and asserts the answer is true. */
async function assertOpenssl(alg, spkiPem, signingInput, signature, what) {
  assert.equal(await opensslVerify(opensslAlg(alg), spkiPem, signingInput, signature), true, `OpenSSL rejects ${what}`)
}

function tamperPayload(jwt) {
  const [h, , s] = jwt.split('.')
  return `${h}.${base64url.encode(JSON.stringify({ sub: 'mallory', n: 1 }))}.${s}`
}

function tamperSignature(jwt) {
  const [h, p, s] = jwt.split('.')
  const sig = base64url.decode(s)
  sig[sig.length >> 1] ^= 0x01
  return `${h}.${p}.${base64url.encode(sig)}`
}

describe('jose with token keys through installGlobal()', () => {
  let hsm
  let uninstall
  let jwks
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'jose' }, pin: PIN })
    jwks = await hsm.jwks()
    uninstall = hsm.installGlobal()
  })
  after(async () => {
    uninstall?.()
    await hsm?.close()
  })

  test('installGlobal replaces globalThis.crypto', () => {
    assert.notEqual(globalThis.crypto, NODE_CRYPTO)
    assert.equal(Object.prototype.toString.call(globalThis.crypto), '[object Crypto]')
  })

  for (const [alg, label] of ASYMMETRIC) {
    test(`${alg} with token key "${label}": SignJWT, CompactSign, FlattenedSign, GeneralSign; jose and OpenSSL verify`, async () => {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      assert.equal(privateKey.extractable, false)
      assert.ok(publicKey, 'the token key has a public key')
      const spkiPem = await exportSPKI(publicKey)
      // The public key the token gives is the one Node generated.
      assert.deepEqual(createPublicKey(spkiPem).export({ format: 'der', type: 'spki' }), keys[label].publicKey.export({ format: 'der', type: 'spki' }))

      // SignJWT / jwtVerify
      const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg }).setIssuedAt(1700000000).setIssuer('urn:hsm').sign(privateKey)
      const verified = await jwtVerify(jwt, publicKey, { issuer: 'urn:hsm', algorithms: [alg] })
      assert.equal(verified.payload.sub, 'alice')
      assert.equal(verified.protectedHeader.alg, alg)
      // Node's own key (not from the token) verifies the same JWT.
      await jwtVerify(jwt, keys[label].publicKey, { algorithms: [alg] })
      await assertOpenssl(alg, spkiPem, compactParts(jwt).signingInput, compactParts(jwt).signature, `SignJWT ${alg}`)

      // CompactSign / compactVerify
      const compact = await new CompactSign(payload).setProtectedHeader({ alg }).sign(privateKey)
      const cv = await compactVerify(compact, publicKey)
      assert.deepEqual(Buffer.from(cv.payload), Buffer.from(payload))
      await assertOpenssl(alg, spkiPem, compactParts(compact).signingInput, compactParts(compact).signature, `CompactSign ${alg}`)

      // FlattenedSign / flattenedVerify
      const flat = await new FlattenedSign(payload).setProtectedHeader({ alg }).setUnprotectedHeader({ kid: 'x' }).sign(privateKey)
      const fv = await flattenedVerify(flat, publicKey)
      assert.deepEqual(Buffer.from(fv.payload), Buffer.from(payload))
      await assertOpenssl(alg, spkiPem, `${flat.protected}.${flat.payload}`, base64url.decode(flat.signature), `FlattenedSign ${alg}`)

      // GeneralSign with two signatures by the same token key / generalVerify
      const general = await new GeneralSign(payload).addSignature(privateKey).setProtectedHeader({ alg, n: 1 }).addSignature(privateKey).setProtectedHeader({ alg, n: 2 }).sign()
      assert.equal(general.signatures.length, 2)
      const gv = await generalVerify(general, publicKey)
      assert.deepEqual(Buffer.from(gv.payload), Buffer.from(payload))
      for (const s of general.signatures) {
        await assertOpenssl(alg, spkiPem, `${s.protected}.${general.payload}`, base64url.decode(s.signature), `GeneralSign ${alg}`)
      }

      // A signature over other bytes is not accepted by OpenSSL (the check can fail).
      assert.equal(await opensslVerify(opensslAlg(alg), spkiPem, `${compactParts(jwt).signingInput}x`, compactParts(jwt).signature), false)
    })
  }

  test('JWTs verify through createLocalJWKSet(await hsm.jwks()), the key found by kid', async () => {
    const JWKS = createLocalJWKSet(jwks)
    // A JWKS entry names an alg when the key serves one; the RSA key serves RS* and PS*: no alg.
    for (const [alg, label] of [
      ['RS256', 'rsa'],
      ['PS256', 'rsa'],
      ['ES256', 'p256'],
      ['ES384', 'p384'],
      ['ES512', 'p521'],
      ['EdDSA', 'ed25519'],
    ]) {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      const kid = await calculateJwkThumbprint(await exportJWK(publicKey))
      const entry = jwks.keys.find((k) => k.kid === kid)
      assert.ok(entry, `${label} is in the JWKS under its thumbprint`)
      assert.equal(entry.alg, label === 'rsa' ? undefined : alg)
      const jwt = await new SignJWT({ sub: label }).setProtectedHeader({ alg, kid }).sign(privateKey)
      const { payload: p, key } = await jwtVerify(jwt, JWKS)
      assert.equal(p.sub, label)
      assert.deepEqual(await exportJWK(key), await exportJWK(publicKey))
      await assert.rejects(jwtVerify(tamperSignature(jwt), JWKS), errors.JWSSignatureVerificationFailed)
    }
    // A kid that is not in the set is not matched.
    const { privateKey } = await hsm.keys.get({ label: 'p256' }, { algorithm: 'ES256' })
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: 'nope' }).sign(privateKey)
    await assert.rejects(jwtVerify(jwt, JWKS), errors.JWKSNoMatchingKey)
  })

  test('exportJWK, exportSPKI, calculateJwkThumbprint on token public keys; private keys do not export', async () => {
    for (const label of ['rsa', 'p256', 'p384', 'p521', 'ed25519']) {
      const { privateKey, publicKey } = await hsm.keys.get({ label })
      const jwk = await exportJWK(publicKey)
      assert.deepEqual(jwk, keys[label].publicKey.export({ format: 'jwk' }))
      assert.equal(await exportSPKI(publicKey), keys[label].publicKey.export({ format: 'pem', type: 'spki' }).trimEnd())
      const thumbprint = await calculateJwkThumbprint(jwk)
      assert.equal(thumbprint, await calculateJwkThumbprint(keys[label].publicKey.export({ format: 'jwk' })))
      assert.equal(jwks.keys.filter((k) => k.kid === thumbprint).length, 1, `${label}: JWKS kid = RFC 7638 thumbprint`)
      await assert.rejects(exportJWK(privateKey), TypeError)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
      await assert.rejects(globalThis.crypto.subtle.exportKey('pkcs8', privateKey), (e) => e.name === 'InvalidAccessError')
    }
  })

  for (const [alg, hash] of HMAC) {
    test(`${alg} with the token HMAC secret: jose signs and verifies on the token; equals Node's createHmac`, async () => {
      const { privateKey, publicKey } = await hsm.keys.get({ label: 'hmac' }, { algorithm: alg })
      assert.equal(privateKey.type, 'secret')
      assert.equal(publicKey, undefined)
      const iat = 1700000000
      const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg }).setIssuedAt(iat).sign(privateKey)
      const { signingInput, signature } = compactParts(jwt)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
      assert.deepEqual(Buffer.from(signature), createHmac(hash, keys.hmac.secret).update(signingInput).digest())
      // Known answer: jose with the secret as bytes (Node, no token) makes the same JWT.
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
      const software = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg }).setIssuedAt(iat).sign(new Uint8Array(keys.hmac.secret))
      assert.equal(jwt, software)
      // Verify on the token (C_Verify through the routed global).
      const { payload: p } = await jwtVerify(jwt, privateKey, { algorithms: [alg] })
      assert.equal(p.sub, 'alice')
      await assert.rejects(jwtVerify(tamperPayload(jwt), privateKey), errors.JWSSignatureVerificationFailed)
      await assert.rejects(jwtVerify(tamperSignature(jwt), privateKey), errors.JWSSignatureVerificationFailed)

      const compact = await new CompactSign(payload).setProtectedHeader({ alg }).sign(privateKey)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
      assert.deepEqual(Buffer.from(compactParts(compact).signature), createHmac(hash, keys.hmac.secret).update(compactParts(compact).signingInput).digest())
      assert.deepEqual(Buffer.from((await compactVerify(compact, privateKey)).payload), Buffer.from(payload))

      const flat = await new FlattenedSign(payload).setProtectedHeader({ alg }).sign(privateKey)
      assert.deepEqual(Buffer.from((await flattenedVerify(flat, privateKey)).payload), Buffer.from(payload))
      const general = await new GeneralSign(payload).addSignature(privateKey).setProtectedHeader({ alg }).sign()
      assert.deepEqual(Buffer.from((await generalVerify(general, privateKey)).payload), Buffer.from(payload))
      assert.equal(general.signatures[0].signature, flat.signature)
    })
  }

  test('tampered payload or signature: JWSSignatureVerificationFailed', async () => {
    for (const [alg, label] of [
      ['RS256', 'rsa'],
      ['PS256', 'rsa'],
      ['ES256', 'p256'],
      ['ES512', 'p521'],
      ['EdDSA', 'ed25519'],
    ]) {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      const jwt = await new SignJWT({ sub: 'alice', n: 1 }).setProtectedHeader({ alg }).sign(privateKey)
      await jwtVerify(jwt, publicKey)
      await assert.rejects(jwtVerify(tamperPayload(jwt), publicKey), errors.JWSSignatureVerificationFailed, `${alg} payload`)
      await assert.rejects(jwtVerify(tamperSignature(jwt), publicKey), errors.JWSSignatureVerificationFailed, `${alg} signature`)
    }
  })

  test("RS256 with the RSA-1024 token key: jose's TypeError about 2048 bits,", async () => {
    const { privateKey } = await hsm.keys.get({ label: 'rsa1024' }, { algorithm: 'RS256' })
    assert.equal(privateKey.algorithm.modulusLength, 1024)
    await assert.rejects(new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey), (e) => e instanceof TypeError && /2048/.test(e.message))
    const pss = await hsm.keys.get({ label: 'rsa1024' }, { algorithm: 'PS256' })
    await assert.rejects(new CompactSign(payload).setProtectedHeader({ alg: 'PS256' }).sign(pss.privateKey), (e) => e instanceof TypeError && /2048/.test(e.message))
  })

  test('ES384 with the P-256 key is rejected by jose', async () => {
    const { privateKey } = await hsm.keys.get({ label: 'p256' }, { algorithm: 'ES256' })
    await assert.rejects(new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES384' }).sign(privateKey), (e) => e instanceof TypeError && /P-384/.test(e.message))
    // Nor does the key store hand out the P-256 key for ES384.
    await assert.rejects(hsm.keys.get({ label: 'p256' }, { algorithm: 'ES384' }))
    // And an RSA key for an EC alg, an EC key for EdDSA.
    const rsa = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'RS256' })
    await assert.rejects(new SignJWT({}).setProtectedHeader({ alg: 'ES256' }).sign(rsa.privateKey), TypeError)
    await assert.rejects(new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).sign(privateKey), TypeError)
  })
})

describe('hsm.jwks()', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'jose' }, pin: PIN })
  })
  after(() => hsm.close())

  // RSA-1024 is left out: RFC 7518 asks for 2048 bits or more and jose refuses smaller keys.
  const ASYM_LABELS = ['rsa', 'p256', 'p384', 'p521', 'ed25519']
  const EXPECTED_ALG = { rsa: undefined, p256: 'ES256', p384: 'ES384', p521: 'ES512', ed25519: 'EdDSA' }

  test('every asymmetric key once: kid = RFC 7638 thumbprint, alg, use "sig"; no secret keys', async () => {
    const { keys: published } = await hsm.jwks()
    assert.equal(published.length, ASYM_LABELS.length, JSON.stringify(published.map((k) => k.kid)))
    assert.ok(published.every((k) => k.kty !== 'oct' && k.k === undefined && k.d === undefined))
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'rsa1024' does not exist on type '{}'.
    const small = await calculateJwkThumbprint(keys.rsa1024.publicKey.export({ format: 'jwk' }))
    assert.ok(!published.some((k) => k.kid === small), 'the RSA-1024 key is not published')
    for (const label of ASYM_LABELS) {
      const nodeJwk = keys[label].publicKey.export({ format: 'jwk' })
      const kid = await calculateJwkThumbprint(nodeJwk)
      const matches = published.filter((k) => k.kid === kid)
      assert.equal(matches.length, 1, `${label} appears once`)
      const [jwk] = matches
      assert.equal(jwk.use, 'sig')
      assert.equal(jwk.alg, EXPECTED_ALG[label])
      for (const member of ['kty', 'n', 'e', 'crv', 'x', 'y']) assert.equal(jwk[member], nodeJwk[member], `${label}.${member}`)
      // The published thumbprint is what jose computes on the published JWK itself.
      assert.equal(await calculateJwkThumbprint(jwk), jwk.kid)
      // A usable public key for its alg.
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'type' does not exist on type 'CryptoKey | Uint8Array<ArrayBufferLike> | Uint8Array<ArrayBufferLik...
      assert.equal((await jose.importJWK(jwk, jwk.alg ?? 'PS256')).type, 'public')
    }
  })

  test('{ kid: "id" } and { kid: "label" }', async () => {
    const { keys: byThumb } = await hsm.jwks()
    const { keys: byId } = await hsm.jwks({ kid: 'id' })
    const { keys: byLabel } = await hsm.jwks({ kid: 'label' })
    const strip = ({ kid, ...rest }) => rest
    for (const label of ASYM_LABELS) {
      const thumb = await calculateJwkThumbprint(keys[label].publicKey.export({ format: 'jwk' }))
      const a = byThumb.find((k) => k.kid === thumb)
      const b = byId.find((k) => k.kid === keys[label].id)
      const c = byLabel.find((k) => k.kid === label)
      assert.ok(b, `${label} under its id ${keys[label].id}`)
      assert.ok(c, `${label} under its label`)
      assert.deepEqual(strip(b), strip(a))
      assert.deepEqual(strip(c), strip(a))
    }
    assert.equal(byId.length, ASYM_LABELS.length)
    assert.equal(byLabel.length, ASYM_LABELS.length)
  })
})

describe('jose without token keys: same results with the routing crypto installed', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'jose' }, pin: PIN })
  })
  after(() => hsm.close())

  /** Runs fn with Node's crypto, then with the routing crypto installed, and returns both results. */
  async function beforeAndAfter(fn) {
    assert.equal(globalThis.crypto, NODE_CRYPTO)
    const plain = await fn('node')
    const uninstall = hsm.installGlobal()
    try {
      assert.notEqual(globalThis.crypto, NODE_CRYPTO)
      return [plain, await fn('routed')]
    } finally {
      uninstall()
    }
  }

  test('HS256 with a Uint8Array secret: the same JWT string, and each verifies the other', async () => {
    const secret = new Uint8Array(32).fill(7)
    const [a, b] = await beforeAndAfter(async () => {
      const jwt = await new SignJWT({ sub: 'bob' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(1700000000).sign(secret)
      const { payload: p } = await jwtVerify(jwt, secret)
      assert.equal(p.sub, 'bob')
      await assert.rejects(jwtVerify(tamperPayload(jwt), secret), errors.JWSSignatureVerificationFailed)
      return jwt
    })
    assert.equal(a, b)
    const [h, p] = a.split('.')
    assert.equal(a.split('.')[2], createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url'))
  })

  test('ES256 and EdDSA with generated software keys; Ed25519 is deterministic', async () => {
    const es = await jose.generateKeyPair('ES256')
    const ed = await jose.generateKeyPair('EdDSA', { extractable: true })
    const [a, b] = await beforeAndAfter(async (mode) => {
      // generateKeyPair inside too: Node's generateKey through the global.
      const fresh = await jose.generateKeyPair('ES256')
      assert.equal(Object.prototype.toString.call(fresh.privateKey), '[object CryptoKey]')
      const jwt = await new SignJWT({ mode }).setProtectedHeader({ alg: 'ES256' }).sign(fresh.privateKey)
      assert.equal((await jwtVerify(jwt, fresh.publicKey)).payload.mode, mode)
      const esJwt = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'ES256' }).sign(es.privateKey)
      await jwtVerify(esJwt, es.publicKey)
      const edJwt = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'EdDSA' }).setIssuedAt(1).sign(ed.privateKey)
      await jwtVerify(edJwt, ed.publicKey)
      return { esJwt, edJwt }
    })
    assert.equal(a.edJwt, b.edJwt)
    // Cross-verify: signed before install, verified without it and vice versa.
    await jwtVerify(a.esJwt, es.publicKey)
    await jwtVerify(b.esJwt, es.publicKey)
  })

  test("Node's own WebCrypto through the global: generateKey, importKey, sign, digest, exportKey", async () => {
    const raw = new Uint8Array(32).fill(3)
    const data = enc.encode('hello')
    const [a, b] = await beforeAndAfter(async () => {
      const subtle = globalThis.crypto.subtle
      const hmac = await subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign', 'verify'])
      const mac = Buffer.from(await subtle.sign('HMAC', hmac, data))
      assert.equal(await subtle.verify('HMAC', hmac, mac, data), true)
      const digest = Buffer.from(await subtle.digest('SHA-256', data))
      const aes = await subtle.generateKey({ name: 'AES-GCM', length: 256 }, true, ['encrypt', 'decrypt'])
      const iv = new Uint8Array(12)
      const ct = await subtle.encrypt({ name: 'AES-GCM', iv }, aes, data)
      assert.equal(dec.decode(await subtle.decrypt({ name: 'AES-GCM', iv }, aes, ct)), 'hello')
      const exported = Buffer.from(await subtle.exportKey('raw', hmac))
      const rsa = await subtle.generateKey({ name: 'RSA-PSS', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign', 'verify'])
      const sig = await subtle.sign({ name: 'RSA-PSS', saltLength: 32 }, rsa.privateKey, data)
      assert.equal(await subtle.verify({ name: 'RSA-PSS', saltLength: 32 }, rsa.publicKey, sig, data), true)
      const ecdh = await subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits'])
      const bits = await subtle.deriveBits({ name: 'ECDH', public: ecdh.publicKey }, ecdh.privateKey, 256)
      assert.equal(bits.byteLength, 32)
      const random = globalThis.crypto.getRandomValues(new Uint8Array(16))
      assert.equal(random.length, 16)
      assert.match(globalThis.crypto.randomUUID(), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
      return { mac: mac.toString('hex'), digest: digest.toString('hex'), exported: exported.toString('hex') }
    })
    assert.deepEqual(a, b)
    assert.equal(a.mac, createHmac('sha256', raw).update(data).digest('hex'))
  })

  test('JWE round-trips: dir + A256GCM and ECDH-ES, across install and uninstall', async () => {
    const cek = new Uint8Array(32).fill(9)
    const ecdh = await jose.generateKeyPair('ECDH-ES', { crv: 'P-256' })
    const plaintext = enc.encode('secret message')
    const [a, b] = await beforeAndAfter(async () => {
      const dirJwe = await new jose.CompactEncrypt(plaintext).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(cek)
      assert.equal(dec.decode((await jose.compactDecrypt(dirJwe, cek)).plaintext), 'secret message')
      const ecJwe = await new jose.CompactEncrypt(plaintext).setProtectedHeader({ alg: 'ECDH-ES', enc: 'A256GCM' }).encrypt(ecdh.publicKey)
      assert.equal(dec.decode((await jose.compactDecrypt(ecJwe, ecdh.privateKey)).plaintext), 'secret message')
      const jwt = await new jose.EncryptJWT({ sub: 'carol' }).setProtectedHeader({ alg: 'dir', enc: 'A256GCM' }).encrypt(cek)
      assert.equal((await jose.jwtDecrypt(jwt, cek)).payload.sub, 'carol')
      assert.equal(decodeProtectedHeader(dirJwe).enc, 'A256GCM')
      return { dirJwe, ecJwe }
    })
    // What was encrypted before the install decrypts now, and the other way round.
    assert.equal(dec.decode((await jose.compactDecrypt(a.dirJwe, cek)).plaintext), 'secret message')
    assert.equal(dec.decode((await jose.compactDecrypt(b.dirJwe, cek)).plaintext), 'secret message')
    assert.equal(dec.decode((await jose.compactDecrypt(b.ecJwe, ecdh.privateKey)).plaintext), 'secret message')
  })
})

describe('installGlobal() counts its users; two tokens behind one global', () => {
  let hsmA
  let hsmB
  before(async () => {
    hsmA = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'jose' }, pin: PIN })
    hsmB = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'b' }, pin: PIN })
  })
  after(async () => {
    await hsmA.close()
    await hsmB.close()
  })

  test("Node's crypto comes back only after both uninstalls, in either order; a second call does nothing", () => {
    const descriptor = Object.getOwnPropertyDescriptor(globalThis, 'crypto')
    for (const order of [
      [0, 1],
      [1, 0],
    ]) {
      assert.equal(globalThis.crypto, NODE_CRYPTO)
      const uninstalls = [hsmA.installGlobal(), hsmB.installGlobal()]
      const routed = globalThis.crypto
      assert.notEqual(routed, NODE_CRYPTO)
      uninstalls[order[0]]()
      assert.equal(globalThis.crypto, routed, 'still installed after one uninstall')
      uninstalls[order[0]]()
      assert.equal(globalThis.crypto, routed, 'a second call of the same uninstaller does not count')
      uninstalls[order[1]]()
      assert.equal(globalThis.crypto, NODE_CRYPTO, "Node's crypto after both")
      uninstalls[order[1]]()
      uninstalls[order[0]]()
      assert.equal(globalThis.crypto, NODE_CRYPTO)
      assert.deepEqual(Object.getOwnPropertyDescriptor(globalThis, 'crypto'), descriptor)
    }
    // A re-install after a full uninstall works again.
    const again = hsmA.installGlobal()
    assert.notEqual(globalThis.crypto, NODE_CRYPTO)
    again()
    assert.equal(globalThis.crypto, NODE_CRYPTO)
  })

  test('two tokens sign concurrently through one installed global', async () => {
    const uninstall = hsmA.installGlobal()
    try {
      const jobs = []
      for (const [hsm, nodeKeys, token] of [
        [hsmA, keys, 'jose'],
        [hsmB, keysB, 'b'],
      ]) {
        for (const [alg, label] of [
          ['RS256', 'rsa'],
          ['PS384', 'rsa'],
          ['ES256', 'p256'],
          ['ES512', 'p521'],
          ['EdDSA', 'ed25519'],
        ]) {
          const { privateKey } = await hsm.keys.get({ label }, { algorithm: alg })
          for (let i = 0; i < 8; i++) jobs.push({ alg, privateKey, publicKey: nodeKeys[label].publicKey, token, i })
        }
        const { privateKey } = await hsm.keys.get({ label: 'hmac' }, { algorithm: 'HS256' })
        for (let i = 0; i < 8; i++) jobs.push({ alg: 'HS256', privateKey, secret: nodeKeys.hmac.secret, token, i })
      }
      const jwts = await Promise.all(jobs.map(({ alg, privateKey, token, i }) => new SignJWT({ token, i }).setProtectedHeader({ alg }).sign(privateKey)))
      assert.equal(jwts.length, 96)
      for (const [k, jwt] of jwts.entries()) {
        const job = jobs[k]
        const key = job.secret ? new Uint8Array(job.secret) : job.publicKey
        const { payload: p } = await jwtVerify(jwt, key)
        assert.deepEqual([p.token, p.i], [job.token, job.i])
      }
      // Token B's keys are not token A's: a JWT from B does not verify with A's public key.
      const b = jobs.findIndex((j) => j.token === 'b' && j.alg === 'ES256')
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'p256' does not exist on type '{}'.
      await assert.rejects(jwtVerify(jwts[b], keys.p256.publicKey), errors.JWSSignatureVerificationFailed)
      const bh = jobs.findIndex((j) => j.token === 'b' && j.alg === 'HS256')
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
      await assert.rejects(jwtVerify(jwts[bh], new Uint8Array(keys.hmac.secret)), errors.JWSSignatureVerificationFailed)
    } finally {
      uninstall()
    }
    assert.equal(globalThis.crypto, NODE_CRYPTO)
  })
})
