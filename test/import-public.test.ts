// Issue #13: hsm.subtle imports public keys in the spec's raw format (EC, ECDH, Ed25519, X25519),
// writes nothing on the token for a public key unless `persistent` asks, and leaves algorithms no
// token key serves (HKDF, PBKDF2) to Node's WebCrypto instead of failing.
import assert from 'node:assert/strict'
import { webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { objectCounter } from './helpers/other-user.js'

const softhsm = freshSoftHsm()
softhsm.initToken('imp')
const { Pkcs11Crypto, TokenCryptoKey } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle

const RAW = [
  [{ name: 'ECDSA', namedCurve: 'P-256' }, ['sign', 'verify'], ['verify']],
  [{ name: 'ECDH', namedCurve: 'P-384' }, ['deriveBits'], []],
  [{ name: 'Ed25519' }, ['sign', 'verify'], ['verify']],
  [{ name: 'X25519' }, ['deriveBits'], []],
]

describe('public keys and Node-only algorithms on hsm.subtle', () => {
  let hsm
  let countObjects
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'imp' }, pin: PIN })
    countObjects = objectCounter(softhsm.module, 'imp')
  })
  after(() => hsm?.close())

  test('raw public keys import as Node keys equal to the originals; 50 imports write no object', async () => {
    const before = countObjects()
    for (let i = 0; i < 50; i++) {
      const [algorithm, pairUsages, usages] = RAW[i % RAW.length]
      // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
      const pair = await node.generateKey(algorithm, true, pairUsages)
      const raw = await node.exportKey('raw', pair.publicKey)
      const key = await hsm.subtle.importKey('raw', raw, algorithm, true, usages)
      assert.equal(key.type, 'public')
      assert.ok(!(key instanceof TokenCryptoKey))
      assert.deepEqual(Buffer.from(await node.exportKey('raw', key)), Buffer.from(raw))
      const spki = await hsm.subtle.importKey('spki', await node.exportKey('spki', pair.publicKey), algorithm, true, usages)
      assert.deepEqual(Buffer.from(await node.exportKey('raw', spki)), Buffer.from(raw))
    }
    assert.equal(countObjects(), before)
  })

  test('persistent: true stores a raw public key on the token', async () => {
    const before = countObjects()
    const pair = await node.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])
    await hsm.subtle.importKey('raw', await node.exportKey('raw', pair.publicKey), { name: 'ECDSA', namedCurve: 'P-256', label: 'kept', persistent: true }, true, ['verify'])
    assert.equal(countObjects(), before + 1)
  })

  test('a bad raw point is a DataError; a raw RSA key is refused', async () => {
    await assert.rejects(hsm.subtle.importKey('raw', Buffer.alloc(65, 7), { name: 'ECDH', namedCurve: 'P-256' }, true, []), { name: 'DataError' })
    await assert.rejects(hsm.subtle.importKey('raw', Buffer.alloc(256), { name: 'RSA-OAEP', hash: 'SHA-256' }, true, ['encrypt']), (e) =>
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
      ['DataError', 'NotSupportedError'].includes(e.name),
    )
  })

  test("HKDF and PBKDF2 keys are Node's, and derive as Node does", async () => {
    const secret = new TextEncoder().encode('input keying material')
    const hkdf = await hsm.subtle.importKey('raw', secret, 'HKDF', false, ['deriveBits'])
    const params = { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(8), info: new Uint8Array(0) }
    const expected = await node.deriveBits(params, await node.importKey('raw', secret, 'HKDF', false, ['deriveBits']), 256)
    assert.deepEqual(Buffer.from(await hsm.subtle.deriveBits(params, hkdf, 256)), Buffer.from(expected))
    const pbkdf2 = await hsm.subtle.importKey('raw', secret, 'PBKDF2', false, ['deriveKey'])
    const derived = await hsm.subtle.deriveKey({ name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(16), iterations: 1000 }, pbkdf2, { name: 'AES-GCM', length: 128 }, true, [
      'encrypt',
    ])
    assert.equal((await node.exportKey('raw', derived)).byteLength, 16)
  })
})
