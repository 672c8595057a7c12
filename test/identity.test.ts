// A key's id and label are its identity: a second key of either is refused unless asked for, a
// returned key is the one just made, a delete that would take another key's objects is refused,
// and whatever makes several objects completes or leaves none. What is on the token is read by
// the raw binding in another process, never through the library.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { buildFaultModule, FaultControl } from './helpers/fault.js'

const TOKEN = 'ident'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
// prod: a P-256 key pair with CKA_ID aa, as a tool we did not write makes it.
softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'prod', '--id', 'aa'])
const { Pkcs11Crypto, KeyExistsError, KeyNotFoundError } = await import('pkcs11-webcrypto')

const RAW = fileURLToPath(new URL('./helpers/raw-attributes.cjs', import.meta.url))
const CLI = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
/** Every object on the token, as another process sees it. */
const objects = () => JSON.parse(execFileSync(process.execPath, [RAW, softhsm.module, TOKEN, PIN, '*'], { env: softhsm.env }).toString())

// Through the fault module, so that a test can make the token refuse the second object of a key.
const control = new FaultControl(softhsm.dir)
Object.assign(process.env, control.env)
const hsm = await Pkcs11Crypto.open({ library: buildFaultModule(), token: { label: TOKEN }, pin: PIN })
after(() => hsm.close())

describe('identity is unique by default', () => {
  test('generate with a taken id or label: KeyExistsError naming it, nothing made', async () => {
    const before = objects().length
    await assert.rejects(
      hsm.keys.generate({ algorithm: 'ES256', label: 'new', id: 'aa' }),
      (e) => e instanceof KeyExistsError && e.code === 'ERR_PKCS11_KEY_EXISTS' && /id aa/.test(e.message),
    )
    await assert.rejects(hsm.keys.generate({ algorithm: 'ES256', label: 'prod' }), (e) => e instanceof KeyExistsError && /label "prod"/.test(e.message))
    const causedBy = (type) => (e) => e.name === 'OperationError' && e.cause instanceof type
    // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
    await assert.rejects(hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', label: 'prod', persistent: true }, false, ['sign']), causedBy(KeyExistsError))
    const { privateKey } = await import('node:crypto').then((c) => c.generateKeyPairSync('ec', { namedCurve: 'P-256' }))
    await assert.rejects(
      // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
      hsm.subtle.importKey('pkcs8', privateKey.export({ format: 'der', type: 'pkcs8' }), { name: 'ECDSA', namedCurve: 'P-256', id: 'aa', persistent: true }, false, ['sign']),
      causedBy(KeyExistsError),
    )
    assert.equal(objects().length, before)
    // prod is untouched and still the only key with its label.
    assert.equal((await hsm.keys.get({ label: 'prod' })).id, 'aa')
  })

  test('unique: false adds another, and the key returned is the new one (not the cached older one)', async () => {
    const prod = await hsm.keys.get({ id: 'aa' })
    const added = await hsm.keys.generate({ algorithm: 'ES256', label: 'twin', id: 'aa', unique: false })
    assert.equal(added.label, 'twin')
    const prodJwk = await crypto.subtle.exportKey('jwk', prod.publicKey)
    const addedJwk = await crypto.subtle.exportKey('jwk', added.publicKey)
    assert.notEqual(addedJwk.x, prodJwk.x, 'the returned key is the new one')
    // Both keys share CKA_ID aa: deleting either by label would take the other's public key: refused, both listed.
    const before = objects().length
    await assert.rejects(
      hsm.keys.delete({ label: 'twin' }),
      (e) => e instanceof KeyNotFoundError && /2 keys share CKA_ID aa/.test(e.message) && /label "prod"/.test(e.message) && /label "twin"/.test(e.message),
    )
    assert.equal(objects().length, before)
    // A selector that matches both is refused and lists them.
    await assert.rejects(
      hsm.keys.get({ id: 'aa' }, { algorithm: 'ES256' }),
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'message' does not exist on type 'unknown'.
      (e) => /^2 keys on token "ident" match, select one by id \(.*\): id aa$/.test(e.message) && /label "prod"/.test(e.message) && /label "twin"/.test(e.message),
    )
  })

  test('a certificate that cannot be made leaves no key behind (serialNumber "zz", HS256 with a certificate)', async () => {
    const before = objects().length
    await assert.rejects(hsm.keys.generate({ algorithm: 'ES256', label: 'bad-serial', certificate: { subject: 'CN=x', serialNumber: 'zz' } }), TypeError)
    await assert.rejects(hsm.keys.generate({ algorithm: 'HS256', label: 'hs-cert', certificate: { subject: 'CN=x' } }), TypeError)
    // @ts-expect-error TS2741 (converted from JavaScript): Property 'subject' is missing in type '{}' but required in type 'CertificateOptions'.
    await assert.rejects(hsm.keys.generate({ algorithm: 'ES256', label: 'no-subject', certificate: {} }), TypeError)
    assert.equal(objects().length, before)
  })

  test('the token refuses the certificate after the key pair was made: the pair is destroyed', async () => {
    const before = objects().length
    control.fail('C_CreateObject', 'CKR_DEVICE_MEMORY', { count: 1 })
    await assert.rejects(hsm.keys.generate({ algorithm: 'ES256', label: 'late-failure', certificate: { subject: 'CN=late' } }), /CKR_DEVICE_MEMORY/)
    assert.equal(objects().length, before, 'no object left')
    // An imported key pair whose private half the token refuses leaves no public half.
    const { generateKeyPairSync } = await import('node:crypto')
    const pkcs8 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' })
    control.fail('C_CreateObject', 'CKR_DEVICE_MEMORY', { count: 1, skip: 1 })
    // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
    await assert.rejects(hsm.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256', label: 'half', persistent: true }, false, ['sign']))
    assert.equal(objects().length, before, 'no object left')
  })

  test('concurrent generates with one label: one key', async () => {
    const results = await Promise.allSettled([1, 2, 3].map(() => hsm.keys.generate({ algorithm: 'ES256', label: 'race' })))
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1)
    assert.equal(objects().filter((o) => o.label === 'race' && o.class === 'private').length, 1)
  })

  test('CLI keygen on a taken label or id exits non-zero and leaves nothing; jwks still works', () => {
    const env = { ...softhsm.env }
    const args = ['--module', softhsm.module, '--token', TOKEN, '--pin', PIN]
    const before = objects().length
    for (const taken of [
      ['--label', 'prod'],
      ['--label', 'fresh', '--id', 'aa'],
    ]) {
      const result = spawnSync(process.execPath, [CLI, 'keygen', '--alg', 'ES256', ...taken, ...args], { env, encoding: 'utf8' })
      assert.notEqual(result.status, 0, result.stderr)
      assert.match(result.stderr, /already holds an object with (label "prod"|id aa)/)
    }
    assert.equal(objects().length, before)
    const jwks = spawnSync(process.execPath, [CLI, 'jwks', '--key', 'prod', ...args], { env, encoding: 'utf8' })
    assert.equal(jwks.status, 0, jwks.stderr)
  })
})
