// Session copies of signing keys (issue #17): on a software slot the signing sessions sign with
// copies of their keys made as session objects, which SoftHSM does not check against a file under
// its lock per token. What is checked here is what a copy must never do: outlive its key (deleted
// here or by another application), show in a search or a count, stay after its session, or be made
// of a key that asks for its PIN at each use.
import assert from 'node:assert/strict'
import { createPublicKey, generateKeyPairSync, verify as nodeVerify, webcrypto, type JsonWebKey } from 'node:crypto'
import { after, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import pkcs11js from 'pkcs11js'
import { COPY_MAX_AGE_MS } from '../dist/pkcs11/dispatch/session-copies.js'
import { JWT_INPUT } from './helpers/fault.js'
import { COPY_LABEL, findObjects, withOtherSession } from './helpers/other-user.js'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const TOKEN = 'copies'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' })
softhsm.importKey(TOKEN, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { label: 'p256', id: '01' })
softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'always', '--id', '0aa0', '--always-auth'])
const { Pkcs11Crypto, ConfigurationError, KeyNotFoundError } = await import('pkcs11-webcrypto')

const ecdsa = { name: 'ECDSA', hash: 'SHA-256' }
const data = JWT_INPUT
const opened: Array<{ close(): Promise<void> }> = []
after(() => Promise.all(opened.map((hsm) => hsm.close())))

async function open(options = {}) {
  const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN, ...options })
  opened.push(hsm)
  return hsm
}

/**
 * The copies of keys the process's sessions hold now, as another load of the module in this process
 * sees them (while the library holds the module initialized and logged in).
 */
const copyHandles = () => withOtherSession(softhsm.module!, TOKEN, (native, session) => findObjects(native, session, [{ type: pkcs11js.CKA_LABEL, value: COPY_LABEL }]))
const copies = () => copyHandles().length

/** Signs `count` times, `concurrency` at a time; every result, a signature or an error. */
async function signMany(hsm, key, count: number, concurrency = 8): Promise<Array<ArrayBuffer | Error>> {
  const results: Array<ArrayBuffer | Error> = []
  for (let i = 0; i < count; i += concurrency) {
    const round = Array.from({ length: Math.min(concurrency, count - i) }, () => hsm.subtle.sign(ecdsa, key, data).catch((error: Error) => error))
    results.push(...(await Promise.all(round)))
  }
  return results
}

/** A public CryptoKey of the library as Node's own KeyObject, to verify with. */
const nodePublicKey = async (publicKey) => createPublicKey({ key: (await webcrypto.subtle.exportKey('jwk', publicKey)) as JsonWebKey, format: 'jwk' })

const verifiesWith = (publicKey) => (signature) =>
  signature instanceof ArrayBuffer && nodeVerify('sha256', data, { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature))

describe('session copies of signing keys', () => {
  test('signatures are made with copies, at most one per signing session; each verifies; no search, list or count shows them', async () => {
    const hsm = await open()
    const { privateKey } = await hsm.keys.get({ label: 'p256' })
    const signatures = await signMany(hsm, privateKey, 200, 16)
    assert.ok(signatures.every(verifiesWith(pair.publicKey)), 'every signature verifies with the public key')
    const made = copyHandles()
    assert.ok(made.length >= 1 && made.length <= 8, `${made.length} copies for 8 sessions at most`)
    // Made again past their age (new handles), the old ones destroyed.
    await sleep(COPY_MAX_AGE_MS + 100)
    assert.ok((await signMany(hsm, privateKey, 64, 16)).every(verifiesWith(pair.publicKey)))
    const remade = copyHandles()
    assert.ok(
      remade.some((handle) => !made.includes(handle)),
      'copies made again past their age',
    )
    assert.ok(remade.length <= 8, `${remade.length} copies after they were made again`)
    // Looked up again, listed, counted: the key is there once.
    assert.equal((await hsm.keys.list()).filter((k) => k.label === 'p256').length, 1)
    assert.ok(!(await hsm.keys.list()).some((k) => k.label === COPY_LABEL))
    const again = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN, searchCacheMs: 0 })
    try {
      assert.ok(verifiesWith(pair.publicKey)(await again.subtle.sign(ecdsa, (await again.keys.get({ label: 'p256' })).privateKey, data)))
      assert.equal((await again.keys.list()).filter((k) => k.label === 'p256').length, 1)
      // Searched while copies are being made: a deletion makes every session copy its key again.
      for (let round = 0; round < 10; round++) {
        await hsm.keys.generate({ algorithm: 'HS256', label: `stir-${round}` })
        await hsm.keys.delete({ label: `stir-${round}` })
        const [signatures, listed, found] = await Promise.all([signMany(hsm, privateKey, 32, 16), again.keys.list(), again.keys.get({ label: 'p256' })])
        assert.ok(signatures.every(verifiesWith(pair.publicKey)))
        assert.deepEqual(listed.map((k) => k.label).sort(), ['always', 'p256'], `round ${round}`)
        assert.equal(found.id, '01')
      }
    } finally {
      await again.close()
    }
    // Another instance keeps the module initialized and logged in, where copies left behind would show.
    await open()
    await hsm.close()
    assert.equal(copies(), 0, 'closing the instance left no copy')
  })

  test("none with sessionKeyCopies: 'never'; the option is checked at open", async () => {
    const hsm = await open({ sessionKeyCopies: 'never' })
    const { privateKey } = await hsm.keys.get({ label: 'p256' })
    assert.ok((await signMany(hsm, privateKey, 50)).every(verifiesWith(pair.publicKey)))
    assert.equal(copies(), 0)
    for (const sessionKeyCopies of ['yes', true, 'Software'])
      await assert.rejects(open({ sessionKeyCopies }), (e) => e instanceof ConfigurationError && /sessionKeyCopies must be 'software', 'always', 'never'/.test(e.message))
  })

  test('a key deleted through the library stops signing at once, as without copies', async () => {
    const failures = new Map<string, string[]>()
    for (const sessionKeyCopies of ['software', 'never']) {
      const hsm = await open({ sessionKeyCopies })
      const made = await hsm.keys.generate({ algorithm: 'ES256', label: `doomed-${sessionKeyCopies}` })
      assert.ok((await signMany(hsm, made.privateKey, 40)).every(verifiesWith(await nodePublicKey(made.publicKey))))
      assert.equal(copies() > 0, sessionKeyCopies === 'software', `${copies()} copies with ${sessionKeyCopies}`)
      await hsm.keys.delete({ label: `doomed-${sessionKeyCopies}` })
      const after = await signMany(hsm, made.privateKey, 24)
      assert.ok(
        after.every((r) => r instanceof Error),
        `${after.filter((r) => !(r instanceof Error)).length} signatures after the delete (${sessionKeyCopies})`,
      )
      failures.set(sessionKeyCopies, [...new Set(after.map((e) => `${(e as Error).name} ${(e as { cause?: Error }).cause?.name}`))])
      await hsm.close()
    }
    assert.deepEqual(failures.get('software'), failures.get('never'))
  })

  test(`a key deleted by another application stops signing within ${COPY_MAX_AGE_MS} ms`, async () => {
    const hsm = await open()
    const made = await hsm.keys.generate({ algorithm: 'ES256', label: 'elsewhere' })
    assert.ok((await signMany(hsm, made.privateKey, 64, 16)).every((r) => r instanceof ArrayBuffer))
    assert.ok(copies() >= 1)
    softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--delete-object', '--type', 'privkey', '--label', 'elsewhere'])
    await sleep(COPY_MAX_AGE_MS + 100)
    const after = await signMany(hsm, made.privateKey, 32, 16)
    assert.ok(
      after.every((r) => r instanceof Error),
      `${after.filter((r) => !(r instanceof Error)).length} of 32 signatures made with a key deleted ${COPY_MAX_AGE_MS + 100} ms before`,
    )
    await assert.rejects(hsm.keys.get({ label: 'elsewhere' }), KeyNotFoundError)
  })

  test('no copy of a key that asks for its PIN at each use, nor of a key the module will not copy; both sign', async () => {
    const hsm = await open()
    const before = copies()
    // Made by this process's other load, with CKA_COPYABLE false.
    withOtherSession(softhsm.module!, TOKEN, (native, session) => {
      native.C_GenerateKeyPair(
        session,
        { mechanism: pkcs11js.CKM_EC_KEY_PAIR_GEN },
        [
          { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from('06082a8648ce3d030107', 'hex') },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_VERIFY, value: true },
          { type: pkcs11js.CKA_LABEL, value: 'uncopyable' },
          { type: pkcs11js.CKA_ID, value: Buffer.from('0bb0', 'hex') },
        ],
        [
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_SIGN, value: true },
          { type: pkcs11js.CKA_COPYABLE, value: false },
          { type: pkcs11js.CKA_LABEL, value: 'uncopyable' },
          { type: pkcs11js.CKA_ID, value: Buffer.from('0bb0', 'hex') },
        ],
      )
    })
    const uncopyable = await hsm.keys.get({ label: 'uncopyable' })
    assert.ok((await signMany(hsm, uncopyable.privateKey, 40)).every(verifiesWith(await nodePublicKey(uncopyable.publicKey))))
    const always = await hsm.keys.get({ label: 'always' }, { keyPin: PIN })
    assert.ok((await signMany(hsm, always.privateKey, 16)).every(verifiesWith(await nodePublicKey(always.publicKey))))
    assert.equal(copies(), before, 'no copy made of either')
    // The same instance copies a key that may be copied.
    const { privateKey } = await hsm.keys.get({ label: 'p256' })
    assert.ok((await signMany(hsm, privateKey, 16)).every(verifiesWith(pair.publicKey)))
    assert.ok(copies() > before)
  })
})
