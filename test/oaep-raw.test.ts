// Issue #13: the rsaOaep: 'raw' opt-in. The token does the RSA private operation (CKM_RSA_X_509)
// and the library the OAEP decoding, so SoftHSM 2.6.1 (OAEP with SHA-1 only, labels ignored)
// decrypts RSA-OAEP-256/384/512 with labels. Malformed blocks of every kind (leading byte, label
// hash, separator, padding, lengths, a value above the modulus) are one and the same error.
import assert from 'node:assert/strict'
import { constants, createHash, publicEncrypt, randomBytes, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { CompactEncrypt, compactDecrypt } from 'jose'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const softhsm = freshSoftHsm()
softhsm.initToken('raw-oaep')
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle
const REJECTED = { name: 'OperationError', message: 'the operation failed for an operation-specific reason' }
const HASHES = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' }
const K = 256

function mgf1(hash, seed, length) {
  const blocks = []
  for (let i = 0; blocks.length * createHash(hash).digest().length < length; i++) {
    const counter = Buffer.alloc(4)
    counter.writeUInt32BE(i)
    blocks.push(createHash(hash).update(seed).update(counter).digest())
  }
  return Buffer.concat(blocks).subarray(0, length)
}

/** An OAEP block built by hand (RFC 8017 7.1.1), with `spoil` changing DB or the block before masking. */
function encode(hash, message, { label = Buffer.alloc(0), db: spoilDb = (db) => db, y = 0 } = {}) {
  const hLen = createHash(hash).digest().length
  const lHash = createHash(hash).update(label).digest()
  const db = spoilDb(Buffer.concat([lHash, Buffer.alloc(K - message.length - 2 * hLen - 2), Buffer.from([1]), message]))
  const seed = randomBytes(hLen)
  const maskedDb = Buffer.from(db.map((b, i) => b ^ mgf1(hash, seed, db.length)[i]))
  const maskedSeed = Buffer.from(seed.map((b, i) => b ^ mgf1(hash, maskedDb, hLen)[i]))
  return Buffer.concat([Buffer.from([y]), maskedSeed, maskedDb])
}

describe("rsaOaep: 'raw'", () => {
  let hsm, publicJwk, keyFor
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'raw-oaep' }, pin: PIN })
    const { publicKey } = await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'oaep' })
    const { kty, n, e } = await node.exportKey('jwk', publicKey)
    publicJwk = { kty, n, e }
    keyFor = async (hash) => (await hsm.keys.get({ label: 'oaep' }, { algorithm: { name: 'RSA-OAEP', hash }, rsaOaep: 'raw' })).privateKey
  })
  after(() => hsm?.close())
  // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'format' does not exist in type 'KeyObject | Buffer<A...
  const raw = (block) => publicEncrypt({ key: publicJwk, format: 'jwk', padding: constants.RSA_NO_PADDING }, block)

  test('off by default: RSA-OAEP-256 is refused on SoftHSM; with it, every hash and labels decrypt as Node encrypts', async () => {
    await assert.rejects(hsm.keys.get({ label: 'oaep' }, { algorithm: 'RSA-OAEP-256' }), { name: 'NotSupportedError' })
    await assert.rejects(hsm.keys.get({ label: 'oaep' }, { algorithm: 'RSA-OAEP-256', rsaOaep: 'yes' }), TypeError)
    for (const hash of Object.keys(HASHES)) {
      const privateKey = await keyFor(hash)
      const publicKey = await node.importKey('jwk', publicJwk, { name: 'RSA-OAEP', hash }, false, ['encrypt'])
      for (const label of [undefined, Buffer.from('a label')]) {
        for (const length of [0, 1, 32, K - 2 * createHash(HASHES[hash]).digest().length - 2]) {
          const message = randomBytes(length)
          const ciphertext = await node.encrypt({ name: 'RSA-OAEP', label }, publicKey, message)
          assert.deepEqual(Buffer.from(await hsm.subtle.decrypt({ name: 'RSA-OAEP', label }, privateKey, ciphertext)), message, `${hash} ${length}`)
        }
      }
      // The label counts: another label is the one error.
      const labelled = await node.encrypt({ name: 'RSA-OAEP', label: Buffer.from('one') }, publicKey, Buffer.from('x'))
      await assert.rejects(hsm.subtle.decrypt({ name: 'RSA-OAEP', label: Buffer.from('two') }, privateKey, labelled), REJECTED)
    }
  })

  test('jose RSA-OAEP-256 and -512 JWEs decrypt with the token key', async () => {
    for (const [alg, hash] of [
      ['RSA-OAEP-256', 'SHA-256'],
      ['RSA-OAEP-512', 'SHA-512'],
    ]) {
      const publicKey = await node.importKey('jwk', publicJwk, { name: 'RSA-OAEP', hash }, false, ['encrypt'])
      const jwe = await new CompactEncrypt(new TextEncoder().encode('claims')).setProtectedHeader({ alg, enc: 'A256GCM' }).encrypt(publicKey)
      const uninstall = hsm.installGlobal()
      try {
        const privateKey = (await hsm.keys.get({ label: 'oaep' }, { algorithm: alg, rsaOaep: 'raw' })).privateKey
        assert.equal(new TextDecoder().decode((await compactDecrypt(jwe, privateKey)).plaintext), 'claims')
      } finally {
        uninstall()
      }
    }
  })

  test('hand-made blocks: a valid one decrypts; every malformed one is the same error', async () => {
    const privateKey = await keyFor('SHA-256')
    const hash = 'sha256'
    const message = Buffer.from('the CEK')
    assert.deepEqual(Buffer.from(await hsm.subtle.decrypt('RSA-OAEP', privateKey, raw(encode(hash, message)))), message)
    assert.deepEqual(Buffer.from(await hsm.subtle.decrypt('RSA-OAEP', privateKey, raw(encode(hash, Buffer.alloc(0))))), Buffer.alloc(0))
    const malformed = {
      'leading byte 1': raw(encode(hash, message, { y: 1 })),
      'leading byte 0x80': raw(encode(hash, message, { y: 0x80 })),
      'label hash': raw(
        encode(hash, message, {
          db: (db) => {
            db[3] ^= 1
            return db
          },
        }),
      ),
      'no separator': raw(
        encode(hash, message, {
          db: (db) => {
            db[db.length - message.length - 1] = 0
            return db
          },
        }),
      ),
      'separator 2': raw(
        encode(hash, message, {
          db: (db) => {
            db[db.length - message.length - 1] = 2
            return db
          },
        }),
      ),
      'padding not zero': raw(
        encode(hash, message, {
          db: (db) => {
            db[40] = 7
            return db
          },
        }),
      ),
      'another label': raw(encode(hash, message, { label: Buffer.from('x') })),
      'SHA-1 block': raw(encode('sha1', message)),
      'a byte short': raw(encode(hash, message)).subarray(1),
      'a byte long': Buffer.concat([raw(encode(hash, message)), Buffer.alloc(1)]),
      'above the modulus': Buffer.alloc(K, 0xff),
      empty: Buffer.alloc(0),
      zeros: Buffer.alloc(K),
    }
    for (const [what, ciphertext] of Object.entries(malformed)) {
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
      await assert.rejects(hsm.subtle.decrypt('RSA-OAEP', privateKey, ciphertext), (e) => e.name === REJECTED.name && e.message === REJECTED.message && e.cause === undefined, what)
    }
  })
})
