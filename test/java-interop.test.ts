// Issue #3, Java side: JWS signed on the token through jose verify with the JDK, and keys that
// Java's keytool made on the token (SunPKCS11, as in the Nimbus HSM guide) work both ways:
// Java signs, we verify; we sign, Java verifies with the keystore certificate.
import assert from 'node:assert/strict'
import { createPublicKey, X509Certificate } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { base64url, CompactSign, errors, exportSPKI, jwtVerify, SignJWT } from 'jose'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'
import { javaAvailable, javaSignP11, javaVerifyMany, javaVerifyP11, keytoolGenKeyPair, writeSunPkcs11Config } from './helpers/java.js'

const skip = javaAvailable() ? false : 'java and keytool are not installed (JDK needed): Java interoperability not tested'

const softhsm = freshSoftHsm()
softhsm.initToken('java') // the only token: slotListIndex 0
provisionTestKeys(softhsm, 'java')
const env = softhsm.env
let cfg
if (!skip) {
  // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ library: string; slotListIndex: number; }' is not assignable to parameter of type '{ li...
  cfg = writeSunPkcs11Config(softhsm.dir, { library: softhsm.module, slotListIndex: 0 })
  // keytool writes to the token files; it runs before this process opens the token (SoftHSM caches
  // objects), and one at a time: two JVMs writing one SoftHSM token at once fail with "load failed".
  // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ cfg: any; pin: string; alias: string; keyalg: string; keysize: number; env: { SOFTHSM2_...
  await keytoolGenKeyPair({ cfg, pin: PIN, alias: 'javarsa', keyalg: 'RSA', keysize: 2048, env })
  // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ cfg: any; pin: string; alias: string; keyalg: string; groupname: string; env: { SOFTHSM...
  await keytoolGenKeyPair({ cfg, pin: PIN, alias: 'javaec', keyalg: 'EC', groupname: 'secp256r1', env })
}

const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

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
]

function tamperSignature(jws) {
  const [h, p, s] = jws.split('.')
  const sig = base64url.decode(s)
  sig[sig.length >> 1] ^= 0x01
  return `${h}.${p}.${base64url.encode(sig)}`
}

describe('Java interoperability', { skip }, () => {
  let hsm
  let uninstall
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'java' }, pin: PIN })
    uninstall = hsm.installGlobal()
  })
  after(async () => {
    uninstall?.()
    await hsm?.close()
  })

  test('every asymmetric JWS signed on the token verifies with Java (one JVM)', async () => {
    const items = []
    for (const [alg, label] of ASYMMETRIC) {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      const spkiPem = await exportSPKI(publicKey)
      const jwt = await new SignJWT({ sub: 'alice', alg }).setProtectedHeader({ alg }).setIssuedAt().sign(privateKey)
      const compact = await new CompactSign(new TextEncoder().encode('payload for ' + alg)).setProtectedHeader({ alg, typ: 'x' }).sign(privateKey)
      items.push({ alg, spkiPem, jws: jwt }, { alg, spkiPem, jws: compact })
    }
    // Controls that must come out invalid, so that the check can fail.
    const controls = [
      { ...items[0], jws: tamperSignature(items[0].jws) },
      { ...items[items.length - 1], jws: tamperSignature(items[items.length - 1].jws) },
      // An ES256 JWS checked with the P-384 public key.
      { alg: 'ES256', spkiPem: items.find((i) => i.alg === 'ES384').spkiPem, jws: items.find((i) => i.alg === 'ES256').jws },
    ]
    const results = await javaVerifyMany([...items, ...controls], env)
    const expected = [...items.map(() => true), ...controls.map(() => false)]
    assert.deepEqual(
      results.map((ok, i) => `${[...items, ...controls][i].alg}: ${ok}`),
      expected.map((ok, i) => `${[...items, ...controls][i].alg}: ${ok}`),
    )
  })

  test('keytool keys are found by alias, with their certificates', async () => {
    for (const [label, algorithm, kty] of [
      ['javarsa', 'RS256', 'RSA'],
      ['javaec', 'ES256', 'EC'],
    ]) {
      const key = await hsm.keys.get({ label }, { algorithm })
      assert.equal(key.label, label)
      assert.ok(key.certificate, `${label} has its keytool certificate`)
      assert.ok(key.publicKey, `${label} has a public key`)
      const certificate = new X509Certificate(Buffer.from(key.certificate.rawData))
      assert.equal(certificate.subject, `CN=${label}`)
      const spki = (k) => k.export({ format: 'der', type: 'spki' })
      assert.deepEqual(spki(createPublicKey(await exportSPKI(key.publicKey))), spki(certificate.publicKey))
      assert.equal((await exportSPKI(key.publicKey)).includes('PUBLIC KEY'), true)
      assert.equal(key.publicKey.algorithm.name === 'ECDSA' ? 'EC' : 'RSA', kty)
    }
  })

  test('Java signs with the keytool keys through SunPKCS11 (RS256, PS256, ES256); our provider verifies', async () => {
    const cases = [
      ['javarsa', 'RS256'],
      ['javarsa', 'PS256'],
      ['javaec', 'ES256'],
    ]
    const jwts = [] // one JVM at a time, as below
    for (const [alias, alg] of cases) jwts.push(await javaSignP11({ cfg, pin: PIN, alias, alg, payload: { sub: 'java', alg }, env }))
    for (const [i, [alias, alg]] of cases.entries()) {
      const { publicKey } = await hsm.keys.get({ label: alias }, { algorithm: alg })
      const { payload, protectedHeader } = await jwtVerify(jwts[i], publicKey, { algorithms: [alg] })
      assert.equal(protectedHeader.alg, alg)
      assert.deepEqual(payload, { sub: 'java', alg })
      await assert.rejects(jwtVerify(tamperSignature(jwts[i]), publicKey), errors.JWSSignatureVerificationFailed)
    }
  })

  test('our provider signs with the keytool keys; Java verifies with the keystore certificate (Nimbus flow)', async () => {
    const cases = [
      ['javarsa', 'RS256'],
      ['javarsa', 'PS256'],
      ['javarsa', 'RS512'],
      ['javaec', 'ES256'],
    ]
    const jwts = []
    for (const [alias, alg] of cases) {
      const { privateKey } = await hsm.keys.get({ label: alias }, { algorithm: alg })
      jwts.push(await new SignJWT({ sub: 'node', alg }).setProtectedHeader({ alg }).setIssuedAt().sign(privateKey))
    }
    const checks = [
      ...cases.map(([alias, alg], i) => ({ alias, alg, jws: jwts[i] })),
      // Control: a tampered JWS is invalid for Java too.
      { alias: 'javaec', alg: 'ES256', jws: tamperSignature(jwts[3]) },
    ]
    // One JVM at a time: SoftHSM answers CKR_TOKEN_NOT_RECOGNIZED to a process that reads the token
    // files while another process is loading them.
    const results = []
    for (const check of checks) results.push(await javaVerifyP11({ cfg, pin: PIN, ...check, env }))
    assert.deepEqual(results, [true, true, true, true, false])
  })
})
