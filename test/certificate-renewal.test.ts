// Certificates beside keys: ids checked like key selectors, a renewal replaces (or, if asked, joins)
// the old certificate and the newest is the one served (keys.get, JWKS x5c), a CA that did not
// issue the leaf is refused, an expired leaf is refused unless asked, and a chain that cannot be
// stored whole is not stored at all. Certificates are issued with Node keys by @peculiar/x509;
// what is on the token is read by the raw binding in another process.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { buildFaultModule, FaultControl } from './helpers/fault.js'

const TOKEN = 'renew'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
const control = new FaultControl(softhsm.dir)
Object.assign(process.env, control.env)
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const RAW = fileURLToPath(new URL('./helpers/raw-attributes.cjs', import.meta.url))
// In a fixed order: the token lists its objects in an order of its own (SoftHSM: its store's files), which may change between searches.
const certificatesOnToken = () =>
  JSON.parse(execFileSync(process.execPath, [RAW, softhsm.module, TOKEN, PIN, '*'], { env: softhsm.env }).toString())
    .filter((o) => o.class === 'certificate')
    .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))

const hsm = await Pkcs11Crypto.open({ library: buildFaultModule(), token: { label: TOKEN }, pin: PIN })
after(() => hsm.close())

const DAY = 86_400_000
const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' }
/** A CA with a Node key. */
async function makeCa(name) {
  const keys = await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${name}`,
      keys,
      signingAlgorithm: ecdsa,
      notBefore: new Date(Date.now() - 100 * DAY),
      notAfter: new Date(Date.now() + 100 * DAY),
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    },
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'import("crypto").webcrypto.Crypto' is not assignable to parameter of type 'Crypto'.
    webcrypto,
  )
  return { keys, certificate }
}
/** A leaf for `publicKey` issued by `ca`, valid from `from` to `to` days from now. */
function issue(ca, publicKey, subject, from, to) {
  return x509.X509CertificateGenerator.create(
    {
      subject: `CN=${subject}`,
      issuer: ca.certificate.subject,
      publicKey,
      signingKey: ca.keys.privateKey,
      signingAlgorithm: ecdsa,
      serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
        .toString('hex')
        .replace(/^[89a-f]/, '1'),
      notBefore: new Date(Date.now() + from * DAY),
      notAfter: new Date(Date.now() + to * DAY),
    },
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'import("crypto").webcrypto.Crypto' is not assignable to parameter of type 'Crypto'.
    webcrypto,
  )
}
const x5cSubject = async (label) => {
  const jwk = (await hsm.jwks()).keys.find((k) => k.kid && k.x5c && new NodeX509(Buffer.from(k.x5c[0], 'base64')).subject.includes(label))
  return jwk && new NodeX509(Buffer.from(jwk.x5c[0], 'base64')).subject
}

describe('certificates', () => {
  test('ids are checked like key selectors: "01x", "02 ", "" and "1" are refused, nothing deleted', async () => {
    const key = await hsm.keys.generate({ algorithm: 'ES256', label: 'ids', id: '01', certificate: { subject: 'CN=ids' } })
    for (const bad of ['01x', '01 ', '', '1', 'zz']) {
      await assert.rejects(hsm.certificates.delete(bad), TypeError)
      await assert.rejects(hsm.certificates.get(bad), TypeError)
    }
    assert.ok(await hsm.certificates.get(key.id))
    assert.equal(certificatesOnToken().filter((c) => c.id === '01').length, 1)
  })

  test('a renewal replaces the old certificate, and is the one keys.get and the JWKS serve', async () => {
    const ca = await makeCa('Renewal CA')
    const key = await hsm.keys.generate({ algorithm: 'ES256', label: 'renewed', id: '02' })
    await hsm.certificates.import({ label: 'renewed' }, [await issue(ca, key.publicKey, 'renewed-old', -10, 1), ca.certificate])
    assert.match((await hsm.keys.get({ label: 'renewed' })).certificate.subject, /renewed-old/)
    await hsm.certificates.import({ label: 'renewed' }, [await issue(ca, key.publicKey, 'renewed-new', -1, 30), ca.certificate])
    assert.match((await hsm.keys.get({ label: 'renewed' })).certificate.subject, /renewed-new/)
    assert.match(await x5cSubject('renewed'), /renewed-new/)
    assert.equal(certificatesOnToken().filter((c) => c.id === '02').length, 1, 'the old one is gone')
    assert.equal(certificatesOnToken().filter((c) => c.label === 'Renewal CA').length, 1, 'the CA once')
  })

  test('keep: true keeps the old one beside it; the newest is served whatever the order of import', async () => {
    const ca = await makeCa('Keep CA')
    const key = await hsm.keys.generate({ algorithm: 'ES256', label: 'kept', id: '03' })
    await hsm.certificates.import({ label: 'kept' }, await issue(ca, key.publicKey, 'kept-new', -1, 30))
    await hsm.certificates.import({ label: 'kept' }, await issue(ca, key.publicKey, 'kept-old', -20, 2), { keep: true })
    assert.equal(certificatesOnToken().filter((c) => c.id === '03').length, 2)
    assert.match((await hsm.keys.get({ label: 'kept' })).certificate.subject, /kept-new/)
    assert.match((await hsm.certificates.get('03')).subject, /kept-new/)
    assert.match(await x5cSubject('kept'), /kept-new/)
  })

  test('a CA that did not issue the leaf is refused; an expired leaf is refused unless asked', async () => {
    const ca = await makeCa('Right CA')
    const wrong = await makeCa('Wrong CA')
    const key = await hsm.keys.generate({ algorithm: 'ES256', label: 'chain', id: '04' })
    const before = certificatesOnToken().length
    const leaf = await issue(ca, key.publicKey, 'chain', -1, 30)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
    await assert.rejects(hsm.certificates.import({ label: 'chain' }, [leaf, wrong.certificate]), (e) => e.name === 'DataError' && /did not issue/.test(e.message))
    // Same subject, other key: a forged CA is refused too.
    const forged = await makeCa('Right CA')
    await assert.rejects(hsm.certificates.import({ label: 'chain' }, [leaf, forged.certificate]), { name: 'DataError' })
    const expired = await issue(ca, key.publicKey, 'chain-expired', -30, -1)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
    await assert.rejects(hsm.certificates.import({ label: 'chain' }, [expired, ca.certificate]), (e) => e.name === 'DataError' && /expired/.test(e.message))
    assert.equal(certificatesOnToken().length, before)
    await hsm.certificates.import({ label: 'chain' }, [expired, ca.certificate], { allowExpired: true })
    assert.equal(certificatesOnToken().length, before + 2)
  })

  test('a chain the token cannot store whole leaves nothing, and the old certificate still serves', async () => {
    const ca = await makeCa('Half CA')
    const key = await hsm.keys.generate({ algorithm: 'ES256', label: 'half', id: '05', certificate: { subject: 'CN=half-self' } })
    const before = certificatesOnToken()
    control.fail('C_CreateObject', 'CKR_DEVICE_MEMORY', { count: 1, skip: 1 })
    await assert.rejects(hsm.certificates.import({ label: 'half' }, [await issue(ca, key.publicKey, 'half-new', -1, 30), ca.certificate]), /CKR_DEVICE_MEMORY/)
    assert.deepEqual(certificatesOnToken(), before)
    assert.match((await hsm.keys.get({ label: 'half' })).certificate.subject, /half-self/)
  })
})
