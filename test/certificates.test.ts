// Certificates beside token keys: self-signed certificates and CSRs made with token keys verify
// with OpenSSL; a CA-issued certificate is imported for its key; Java's keytool sees the key as a
// PrivateKeyEntry; CKA_ALWAYS_AUTHENTICATE keys sign with a key PIN and fail clearly without one.
import assert from 'node:assert/strict'
import { execFile as execFileCb, execFileSync } from 'node:child_process'
import { createPublicKey, webcrypto } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { javaAvailable, writeSunPkcs11Config } from './helpers/java.js'

const execFile = promisify(execFileCb)
const TOKEN = 'certs'
const JAVA_TOKEN = 'javacerts'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
softhsm.initToken(JAVA_TOKEN)
softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'aa', '--id', '0aa0', '--always-auth'])
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

const RAW = fileURLToPath(new URL('./helpers/raw-attributes.cjs', import.meta.url))
function onToken(label, token = TOKEN) {
  return JSON.parse(execFileSync(process.execPath, [RAW, softhsm.module, token, PIN, label], { env: softhsm.env }).toString())
}
const file = (name: string, content?: string | Buffer) => {
  const path = join(softhsm.dir, name)
  if (content !== undefined) writeFileSync(path, content)
  return path
}
const openssl = (args) => execFile('openssl', args, { env: softhsm.env })
const spkiPem = async (publicKey) =>
  createPublicKey({ key: Buffer.from(await webcrypto.subtle.exportKey('spki', publicKey)), format: 'der', type: 'spki' }).export({ format: 'pem', type: 'spki' })
const pemOf = (der, type) => `-----BEGIN ${type}-----\n${Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')}\n-----END ${type}-----\n`
const data = new TextEncoder().encode('certificates')

describe('certificates made with token keys', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
  })
  after(() => hsm?.close())

  for (const [alg, kind] of [
    ['RS256', 'RSA'],
    ['ES256', 'P-256'],
    ['EdDSA', 'Ed25519'],
  ]) {
    test(`${kind}: a self-signed certificate that OpenSSL verifies, stored beside the key`, async () => {
      const label = `self-${kind}`
      const key = await hsm.keys.generate({ algorithm: alg, label })
      assert.equal(key.certificate, undefined)
      const certificate = await hsm.certificates.createSelfSigned({ label }, { subject: `CN=${label}, O=Test`, days: 30 })
      const pem = certificate.toString('pem')
      const path = file(`${label}.pem`, pem)
      const { stdout } = await openssl(['verify', '-check_ss_sig', '-CAfile', path, path])
      assert.match(stdout, /: OK/)
      const { stdout: text } = await openssl(['x509', '-in', path, '-noout', '-subject', '-pubkey', '-enddate', '-nameopt', 'RFC2253'])
      assert.match(text, new RegExp(`subject=O=Test,CN=${label}`))
      // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'string | NonSharedBuffer' is not assignable to parameter of type 'string'.
      assert.ok(text.includes(await spkiPem(key.publicKey)), "the certificate carries the key's public key")
      const notAfter = new Date(/notAfter=(.*)/.exec(text)[1])
      // @ts-expect-error TS2362 (converted from JavaScript): The left-hand side of an arithmetic operation must be of type 'any', 'number', 'bigint' or an enum type.
      assert.ok(Math.abs(notAfter - Date.now() - 30 * 86_400_000) < 86_400_000, `notAfter ${notAfter.toISOString()} is 30 days away`)
      // Stored beside the key, under its id and label.
      assert.deepEqual(Buffer.from((await hsm.certificates.get(key.id)).rawData), Buffer.from(certificate.rawData))
      const objects = onToken(label)
      const stored = objects.find((o) => o.class === 'certificate')
      assert.ok(stored, "a certificate object with the key's label")
      assert.equal(stored.id, key.id)
      assert.equal(stored.token, true)
      assert.equal(stored.value, Buffer.from(certificate.rawData).toString('hex'))
      assert.ok((await hsm.keys.get({ label })).certificate, 'keys.get sees the new certificate')
      // CKA_SERIAL_NUMBER is the certificate's own DER INTEGER, as OpenSSL reads it from the certificate.
      const { stdout: serial } = await openssl(['x509', '-in', path, '-noout', '-serial'])
      const der = Buffer.from(stored.serialNumber, 'hex')
      assert.deepEqual([der[0], der[1], der.length], [0x02, der.length - 2, der.length], 'one DER INTEGER')
      assert.ok(der[2] < 0x80, 'positive')
      assert.equal(BigInt(`0x${der.subarray(2).toString('hex')}`), BigInt(`0x${/serial=([0-9A-F]+)/.exec(serial)[1]}`))
      assert.ok(Buffer.from(certificate.rawData).includes(der), 'the INTEGER of the certificate itself')
    })

    test(`${kind}: a serial number with its high bit set is stored as a positive DER INTEGER`, async () => {
      const label = `serial-${kind}`
      await hsm.keys.generate({ algorithm: alg, label, certificate: { subject: `CN=${label}`, serialNumber: 'f00d' } })
      const stored = onToken(label).find((o) => o.class === 'certificate')
      assert.equal(stored.serialNumber, '020300f00d')
    })

    test(`${kind}: a CSR that OpenSSL verifies, with the subject and public key asked for`, async () => {
      const label = `self-${kind}`
      const key = await hsm.keys.get({ label })
      const csr = await hsm.certificates.createCsr({ label }, { subject: `CN=csr-${kind}, O=Test` })
      const path = file(`csr-${kind}.pem`, csr.toString('pem'))
      const { stdout, stderr } = await openssl(['req', '-verify', '-noout', '-in', path, '-subject', '-pubkey', '-nameopt', 'RFC2253'])
      assert.match(stdout + stderr, /verify OK/i)
      assert.doesNotMatch(stdout + stderr, /failure/i)
      assert.match(stdout, new RegExp(`subject=O=Test,CN=csr-${kind}`))
      // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'string | NonSharedBuffer' is not assignable to parameter of type 'string'.
      assert.ok(stdout.includes(await spkiPem(key.publicKey)))
      // The check can fail: a CSR with one signature bit flipped does not verify.
      const der = Buffer.from(csr.rawData)
      der[der.length - 4] ^= 0x01
      // (OpenSSL 3.0's `req -verify` exits 0 even then: its message is what tells.)
      const bad = await openssl(['req', '-verify', '-noout', '-in', file(`csr-${kind}-bad.pem`, pemOf(der, 'CERTIFICATE REQUEST'))]).catch((e) => e)
      assert.match(bad.stdout + bad.stderr, /verify failure/i)
      assert.doesNotMatch(bad.stdout + bad.stderr, /verify OK/i)
    })
  }

  test('a CA-issued certificate is imported for its key, with its CA; list, get, delete', async () => {
    const caKey = file('ca.key')
    const caPem = file('ca.pem')
    await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', caPem, '-subj', '/CN=Test CA', '-days', '30'])
    const key = await hsm.keys.generate({ algorithm: 'ES256', label: 'leaf' })
    const before = await hsm.keys.get({ label: 'leaf' }) // cached now, without certificate
    assert.equal(before.certificate, undefined)
    const csr = await hsm.certificates.createCsr({ label: 'leaf' }, { subject: 'CN=leaf' })
    const csrPath = file('leaf.csr', csr.toString('pem'))
    const leafPath = file('leaf.pem')
    await openssl(['x509', '-req', '-in', csrPath, '-CA', caPem, '-CAkey', caKey, '-set_serial', '4242', '-days', '10', '-out', leafPath])
    await openssl(['verify', '-CAfile', caPem, leafPath])
    const leafPem = readFileSync(leafPath, 'utf8')
    const caText = readFileSync(caPem, 'utf8')

    const imported = await hsm.certificates.import({ label: 'leaf' }, [leafPem, caText])
    assert.equal(imported.subject, 'CN=leaf')
    assert.equal(imported.issuer, 'CN=Test CA')
    const got = await hsm.certificates.get(key.id)
    assert.ok(got, 'certificates.get finds the imported certificate')
    assert.equal(got.toString('pem').replace(/\r/g, '').trim(), leafPem.replace(/\r/g, '').trim())
    const after = await hsm.keys.get({ label: 'leaf' })
    assert.ok(after.certificate, 'keys.get shows the certificate after import (the cache was forgotten)')
    assert.equal(after.certificate.serialNumber.replace(/^0+/, ''), (4242).toString(16))

    const list = await hsm.certificates.list()
    const leaf = list.find((c) => c.subject === 'CN=leaf')
    const ca = list.find((c) => c.subject === 'CN=Test CA')
    assert.ok(leaf && ca, 'certificates.list shows leaf and CA')
    assert.equal(leaf.id, key.id)
    assert.equal(leaf.label, 'leaf')
    assert.equal(leaf.issuer, 'CN=Test CA')
    assert.notEqual(ca.id, key.id)
    assert.equal(ca.label, 'Test CA')
    assert.equal(onToken('Test CA').filter((o) => o.class === 'certificate').length, 1)

    // The same certificate for another key: its public key differs.
    await hsm.keys.generate({ algorithm: 'ES256', label: 'other' })
    await assert.rejects(hsm.certificates.import({ label: 'other' }, leafPem), { name: 'DataError' })
    await assert.rejects(hsm.certificates.import({ label: 'leaf' }, 'not a certificate'), { name: 'DataError' })
    assert.equal((await hsm.keys.get({ label: 'other' })).certificate, undefined)

    assert.equal(await hsm.certificates.delete(key.id), 1)
    assert.equal(await hsm.certificates.get(key.id), undefined)
    assert.equal((await hsm.keys.get({ label: 'leaf' })).certificate, undefined)
    assert.ok(!(await hsm.certificates.list()).some((c) => c.subject === 'CN=leaf'))
    assert.deepEqual(
      onToken('leaf')
        .map((o) => o.class)
        .sort(),
      ['private', 'public'],
    )
  })
})

describe('Java keytool sees a key with a stored certificate', { skip: !javaAvailable() && 'java/keytool not available' }, () => {
  test('keys.generate (persistent) + createSelfSigned: a PrivateKeyEntry under the certificate label', { timeout: 60_000 }, async () => {
    const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: JAVA_TOKEN }, pin: PIN })
    let slotId
    try {
      await hsm.keys.generate({ algorithm: 'ES256', label: 'java-signer' })
      await hsm.keys.generate({ algorithm: 'RS256', label: 'java-rsa', certificate: { subject: 'CN=java-rsa' } })
      await hsm.keys.generate({ algorithm: 'ES256', label: 'java-nocert' })
      await hsm.certificates.createSelfSigned({ label: 'java-signer' }, { subject: 'CN=java-signer' })
      slotId = hsm.token.slotId
    } finally {
      await hsm.close()
    }
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ library: string; slot: number; }' is not assignable to parameter of type '{ library: an...
    const cfg = writeSunPkcs11Config(softhsm.dir, { library: softhsm.module, slot: Number(slotId) })
    const { stdout } = await execFile('keytool', ['-list', '-storetype', 'PKCS11', '-providerClass', 'sun.security.pkcs11.SunPKCS11', '-providerArg', cfg, '-storepass', PIN], {
      env: softhsm.env,
      timeout: 60_000,
    })
    assert.match(stdout, /^java-signer, PrivateKeyEntry,/m)
    assert.match(stdout, /^java-rsa, PrivateKeyEntry,/m)
    assert.doesNotMatch(stdout, /java-nocert/)
    assert.match(stdout, /contains 2 entries/)
  })
})

describe('CKA_ALWAYS_AUTHENTICATE keys (pkcs11-tool --always-auth)', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
  })
  after(() => hsm?.close())
  const ecdsa = { name: 'ECDSA', hash: 'SHA-256' }
  const verify = async (publicKey, signature) => webcrypto.subtle.verify(ecdsa, publicKey, signature, data)

  test('SoftHSM honours it: the attribute is set and C_Sign without a context login fails', { timeout: 20_000 }, () => {
    const [priv] = onToken('aa').filter((o) => o.class === 'private')
    assert.equal(priv.alwaysAuthenticate, true)
    assert.equal(priv.id, '0aa0')
    // Raw binding, another process: sign without and with CKU_CONTEXT_SPECIFIC login.
    const script = `
      const p = require('pkcs11js'); const [mod, tok, pin] = process.argv.slice(1)
      const m = new p.PKCS11(); m.load(mod); m.C_Initialize()
      const slot = m.C_GetSlotList(true).find((s) => m.C_GetTokenInfo(s).label.trim() === tok)
      const s = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION); m.C_Login(s, p.CKU_USER, pin)
      m.C_FindObjectsInit(s, [{ type: p.CKA_CLASS, value: p.CKO_PRIVATE_KEY }, { type: p.CKA_LABEL, value: 'aa' }])
      const [key] = m.C_FindObjects(s, 1); m.C_FindObjectsFinal(s)
      const out = {}
      try { m.C_SignInit(s, { mechanism: p.CKM_ECDSA }, key); m.C_Sign(s, Buffer.alloc(32, 1), Buffer.alloc(64)); out.without = 'signed' } catch (e) { out.without = e.message }
      const s2 = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION)
      m.C_SignInit(s2, { mechanism: p.CKM_ECDSA }, key); m.C_Login(s2, p.CKU_CONTEXT_SPECIFIC, pin)
      out.with = m.C_Sign(s2, Buffer.alloc(32, 1), Buffer.alloc(64)).length
      m.C_Finalize(); process.stdout.write(JSON.stringify(out))`
    const out = JSON.parse(
      execFileSync(process.execPath, ['-e', script, softhsm.module, TOKEN, PIN], {
        env: softhsm.env,
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        timeout: 15_000,
      }).toString(),
    )
    assert.match(out.without, /CKR_USER_NOT_LOGGED_IN/)
    assert.equal(out.with, 64)
  })

  test('signs with keys.get(..., { keyPin }) and with a per-call keyPin member', { timeout: 20_000 }, async () => {
    const withPin = await hsm.keys.get({ label: 'aa' }, { keyPin: PIN })
    assert.equal(withPin.id, '0aa0')
    const s1 = await hsm.subtle.sign(ecdsa, withPin.privateKey, data)
    assert.equal(await verify(withPin.publicKey, s1), true)
    const plain = await hsm.keys.get({ label: 'aa' })
    const s2 = await hsm.subtle.sign({ ...ecdsa, keyPin: PIN }, plain.privateKey, data)
    assert.equal(await verify(plain.publicKey, s2), true)
    assert.equal(JSON.stringify(plain.privateKey).includes(PIN), false)
  })

  test('no key PIN: OperationError caused by ERR_PKCS11_KEY_PIN_REQUIRED', { timeout: 20_000 }, async () => {
    const plain = await hsm.keys.get({ label: 'aa' })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
    await assert.rejects(hsm.subtle.sign(ecdsa, plain.privateKey, data), (e) => e.name === 'OperationError' && e.cause?.code === 'ERR_PKCS11_KEY_PIN_REQUIRED')
  })

  test('a wrong key PIN (per call, or given to keys.get): OperationError caused by CKR_PIN_INCORRECT', { timeout: 20_000 }, async () => {
    // Each on an instance of its own, so that the next test sees what one failure leaves behind.
    for (const how of ['per call', 'keys.get']) {
      const other = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
      try {
        const key = await other.keys.get({ label: 'aa' }, how === 'keys.get' ? { keyPin: '9999' } : {})
        const algorithm = how === 'per call' ? { ...ecdsa, keyPin: '0000' } : ecdsa
        await assert.rejects(
          other.subtle.sign(algorithm, key.privateKey, data),
          // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
          (e) => e.name === 'OperationError' && e.cause?.code === 'CKR_PIN_INCORRECT' && !/0000|9999/.test(String(e.message + e.cause.message)),
        )
      } finally {
        await other.close()
      }
    }
  })

  test('after a wrong key PIN the session is usable again: no sign operation is left active', { timeout: 20_000 }, async () => {
    const plain = await hsm.keys.get({ label: 'aa' })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'cause' does not exist on type 'unknown'.
    await assert.rejects(hsm.subtle.sign({ ...ecdsa, keyPin: '0000' }, plain.privateKey, data), (e) => e.cause?.code === 'CKR_PIN_INCORRECT')
    // A second wrong PIN must fail the same way, not with CKR_OPERATION_ACTIVE.
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'cause' does not exist on type 'unknown'.
    await assert.rejects(hsm.subtle.sign({ ...ecdsa, keyPin: '0000' }, plain.privateKey, data), (e) => e.cause?.code === 'CKR_PIN_INCORRECT')
    const good = await hsm.keys.get({ label: 'aa' }, { keyPin: PIN })
    for (let i = 0; i < 3; i++) assert.equal(await verify(good.publicKey, await hsm.subtle.sign(ecdsa, good.privateKey, data)), true)
    const many = await Promise.all(Array.from({ length: 10 }, () => hsm.subtle.sign(ecdsa, good.privateKey, data)))
    for (const signature of many) assert.equal(await verify(good.publicKey, signature), true)
    // Other keys on the same sessions too.
    const other = await hsm.keys.get({ label: 'self-P-256' })
    const sigs = await Promise.all(Array.from({ length: 10 }, () => hsm.subtle.sign(ecdsa, other.privateKey, data)))
    for (const signature of sigs) assert.equal(await webcrypto.subtle.verify(ecdsa, other.publicKey, signature, data), true)
  })
})
