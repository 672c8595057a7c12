// Issue #13: decrypt, encrypt, deriveBits, deriveKey, wrapKey and unwrapKey with token keys, each
// checked against Node's WebCrypto (the oracle), OpenSSL and published known answers; every input
// the token refuses is one OperationError with one message, and leaves no object behind.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes, webcrypto } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { objectCounter } from './helpers/other-user.js'

const softhsm = freshSoftHsm()
softhsm.initToken('dec')
const { Pkcs11Crypto, TokenCryptoKey } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle
const REJECTED = { name: 'OperationError', message: 'the operation failed for an operation-specific reason' }
const CURVES = ['P-256', 'P-384', 'P-521', 'X25519']
const agreement = (curve) => (curve === 'X25519' ? { name: 'X25519' } : { name: 'ECDH', namedCurve: curve })
const hex = (value) => Buffer.from(value, 'hex')
const work = mkdtempSync(join(tmpdir(), 'p11wc-dec-'))
const openssl = (args: string[], input?: string | Buffer) => execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] })

describe('decrypt, derive, wrap with token keys', () => {
  let hsm
  let oaep
  const ecdh = {}
  let countObjects
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'dec' }, pin: PIN })
    oaep = await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'oaep' })
    for (const curve of CURVES) ecdh[curve] = await hsm.keys.generate({ algorithm: 'ECDH-ES', namedCurve: curve, label: `ecdh-${curve}` })
    countObjects = objectCounter(softhsm.module, 'dec')
  })
  after(() => hsm?.close())

  /** A token AES key with a known value (imported), and the same key in Node. */
  async function aesPair(name, value, usages) {
    const token = await hsm.subtle.importKey('raw', value, name, false, usages)
    const software = await node.importKey('raw', value, name, false, usages)
    return { token, software }
  }

  test('RSA-OAEP: what Node encrypts the token decrypts, empty to the longest message', async () => {
    assert.ok(oaep.privateKey instanceof TokenCryptoKey)
    assert.deepEqual(oaep.privateKey.usages, ['decrypt', 'unwrapKey'])
    for (const length of [0, 1, 32, 214]) {
      const message = randomBytes(length)
      const ciphertext = await node.encrypt({ name: 'RSA-OAEP' }, oaep.publicKey, message)
      assert.deepEqual(Buffer.from(await hsm.subtle.decrypt({ name: 'RSA-OAEP' }, oaep.privateKey, ciphertext)), message)
    }
  })

  test('RSA-OAEP: openssl pkeyutl ciphertexts decrypt', async () => {
    const pem = join(work, 'oaep.pem')
    writeFileSync(pem, Buffer.from(await node.exportKey('spki', oaep.publicKey)))
    const message = Buffer.from('made by openssl')
    const ciphertext = openssl(['pkeyutl', '-encrypt', '-pubin', '-inkey', pem, '-keyform', 'DER', '-pkeyopt', 'rsa_padding_mode:oaep', '-pkeyopt', 'rsa_oaep_md:sha1'], message)
    assert.deepEqual(Buffer.from(await hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, ciphertext)), message)
  })

  test('RSA-OAEP: every bad ciphertext is the same OperationError (no padding oracle)', async () => {
    const good = Buffer.from(await node.encrypt({ name: 'RSA-OAEP' }, oaep.publicKey, Buffer.from('x')))
    const flip = (at) => {
      const c = Buffer.from(good)
      c[at] ^= 0x01
      return c
    }
    const zeroLeading = Buffer.alloc(256)
    const bads = [flip(0), flip(1), flip(128), flip(255), good.subarray(1), Buffer.concat([good, Buffer.alloc(1)]), Buffer.alloc(0), zeroLeading, Buffer.alloc(256, 0xff)]
    for (const bad of bads)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
      await assert.rejects(hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, bad), (e) => e.name === REJECTED.name && e.message === REJECTED.message && e.cause === undefined)
    // The token still decrypts.
    assert.equal(Buffer.from(await hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, good)).toString(), 'x')
  })

  test('RSA-OAEP with a hash SoftHSM does not do fails when the key is handed out; a label it would ignore is refused', async () => {
    for (const alg of ['RSA-OAEP-256', 'RSA-OAEP-384', 'RSA-OAEP-512']) {
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
      await assert.rejects(hsm.keys.get({ label: 'oaep' }, { algorithm: alg }), (e) => e.name === 'NotSupportedError' && e.message.includes(alg))
    }
    await assert.rejects(hsm.keys.get({ label: 'oaep' }, { algorithm: { name: 'RSA-OAEP', hash: 'SHA-256' } }), { name: 'NotSupportedError' })
    const label = Buffer.from('label')
    const ciphertext = await node.encrypt({ name: 'RSA-OAEP', label }, oaep.publicKey, Buffer.from('x'))
    await assert.rejects(hsm.subtle.decrypt({ name: 'RSA-OAEP', label }, oaep.privateKey, ciphertext), { name: 'NotSupportedError' })
    // An empty label is no label.
    const plain = await node.encrypt({ name: 'RSA-OAEP' }, oaep.publicKey, Buffer.from('y'))
    assert.equal(Buffer.from(await hsm.subtle.decrypt({ name: 'RSA-OAEP', label: new Uint8Array(0) }, oaep.privateKey, plain)).toString(), 'y')
    assert.deepEqual((await hsm.keys.list()).find((k) => k.label === 'oaep').algorithms, ['RSA-OAEP'])
  })

  for (const curve of CURVES) {
    test(`${curve}: Z equals Node's for 40 peers; length takes the first bits`, async () => {
      const { privateKey, publicKey } = ecdh[curve]
      const { name } = agreement(curve)
      assert.equal(privateKey.algorithm.name, name)
      for (let i = 0; i < 40; i++) {
        const peer = await node.generateKey(agreement(curve), true, ['deriveBits'])
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
        const ours = Buffer.from(await hsm.subtle.deriveBits({ name, public: peer.publicKey }, privateKey, null))
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'privateKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
        const theirs = Buffer.from(await node.deriveBits({ name, public: publicKey }, peer.privateKey, null))
        assert.deepEqual(ours, theirs)
        if (i < 3) {
          for (const length of [8, 128, 129, 255]) {
            assert.deepEqual(
              // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
              Buffer.from(await hsm.subtle.deriveBits({ name, public: peer.publicKey }, privateKey, length)),
              // @ts-expect-error TS2339 (converted from JavaScript): Property 'privateKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
              Buffer.from(await node.deriveBits({ name, public: publicKey }, peer.privateKey, length)),
              `length ${length}`,
            )
          }
          // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
          await assert.rejects(hsm.subtle.deriveBits({ name, public: peer.publicKey }, privateKey, ours.length * 8 + 8), { name: 'OperationError' })
        }
      }
    })

    test(`${curve}: Z equals openssl pkeyutl -derive; deriveKey gives Node's key`, async () => {
      const { privateKey, publicKey } = ecdh[curve]
      const { name } = agreement(curve)
      const peer = await node.generateKey(agreement(curve), true, ['deriveBits', 'deriveKey'])
      const peerPem = join(work, `peer-${curve}.der`)
      const tokenPub = join(work, `token-${curve}.der`)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'privateKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
      writeFileSync(peerPem, Buffer.from(await node.exportKey('pkcs8', peer.privateKey)))
      writeFileSync(tokenPub, Buffer.from(await node.exportKey('spki', publicKey)))
      const z = openssl(['pkeyutl', '-derive', '-inkey', peerPem, '-keyform', 'DER', '-peerkey', tokenPub, '-peerform', 'DER'])
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
      assert.deepEqual(Buffer.from(await hsm.subtle.deriveBits({ name, public: peer.publicKey }, privateKey, null)), z)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
      const derived = await hsm.subtle.deriveKey({ name, public: peer.publicKey }, privateKey, { name: 'AES-GCM', length: 256 }, true, ['encrypt'])
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'privateKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
      const expected = await node.deriveKey({ name, public: publicKey }, peer.privateKey, { name: 'AES-GCM', length: 256 }, true, ['encrypt'])
      assert.deepEqual(Buffer.from(await node.exportKey('raw', derived)), Buffer.from(await node.exportKey('raw', expected)))
    })
  }

  test("ECDH: the token's own answer through OpenSC (pkcs11-tool --derive -m ECDH1-DERIVE) is our Z", async () => {
    for (const curve of ['P-256', 'P-384', 'P-521']) {
      const { privateKey, id } = ecdh[curve]
      const peer = await node.generateKey(agreement(curve), true, ['deriveBits'])
      const input = join(work, `opensc-peer-${curve}.der`)
      const output = join(work, `opensc-z-${curve}.bin`)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
      writeFileSync(input, Buffer.from(await node.exportKey('spki', peer.publicKey)))
      softhsm.pkcs11Tool(['--token-label', 'dec', '--login', '--pin', PIN, '--derive', '-m', 'ECDH1-DERIVE', '--id', id, '--input-file', input, '--output-file', output])
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
      assert.deepEqual(Buffer.from(await hsm.subtle.deriveBits({ name: 'ECDH', public: peer.publicKey }, privateKey, null)), readFileSync(output), curve)
    }
  })

  test('ECDH argument checks as the specification says', async () => {
    const { privateKey } = ecdh['P-256']
    const other = await node.generateKey(agreement('P-384'), true, ['deriveBits'])
    const x = await node.generateKey(agreement('X25519'), true, ['deriveBits'])
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
    await assert.rejects(hsm.subtle.deriveBits({ name: 'ECDH', public: other.publicKey }, privateKey, 256), { name: 'InvalidAccessError' })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
    await assert.rejects(hsm.subtle.deriveBits({ name: 'ECDH', public: x.publicKey }, privateKey, 256), { name: 'InvalidAccessError' })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'privateKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
    await assert.rejects(hsm.subtle.deriveBits({ name: 'ECDH', public: other.privateKey }, privateKey, 256), { name: 'InvalidAccessError' })
    await assert.rejects(hsm.subtle.deriveBits({ name: 'ECDH' }, privateKey, 256), TypeError)
    await assert.rejects(hsm.subtle.deriveBits({ name: 'ECDH', public: 'key' }, privateKey, 256), TypeError)
  })

  test('X25519: a small-order peer point is the one OperationError', async () => {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'X25519' does not exist on type '{}'.
    const { privateKey } = ecdh.X25519
    for (const point of [Buffer.alloc(32), Buffer.concat([Buffer.from([1]), Buffer.alloc(31)])]) {
      const peer = await node.importKey('raw', point, 'X25519', true, [])
      await assert.rejects(hsm.subtle.deriveBits({ name: 'X25519', public: peer }, privateKey, 256), REJECTED)
    }
  })

  test('AES-GCM: the published test case 16 (McGrew & Viega, AES-256 with AAD), and Node for IV, AAD and tag lengths', async () => {
    const key = hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308')
    const iv = hex('cafebabefacedbaddecaf888')
    const plaintext = hex('d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39')
    const aad = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2')
    const expected = hex(
      '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662' + '76fc6ece0f4e1768cddf8853bb2d551b',
    )
    const { token, software } = await aesPair('AES-GCM', key, ['encrypt', 'decrypt'])
    assert.deepEqual(Buffer.from(await hsm.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, token, plaintext)), expected)
    assert.deepEqual(Buffer.from(await hsm.subtle.decrypt({ name: 'AES-GCM', iv, additionalData: aad }, token, expected)), plaintext)
    for (const ivLength of [12, 16, 60]) {
      for (const tagLength of [32, 96, 128]) {
        const params = { name: 'AES-GCM', iv: randomBytes(ivLength), additionalData: randomBytes(ivLength % 7), tagLength }
        const data = randomBytes(ivLength * 3)
        const ours = Buffer.from(await hsm.subtle.encrypt(params, token, data))
        assert.deepEqual(ours, Buffer.from(await node.encrypt(params, software, data)))
        assert.deepEqual(Buffer.from(await hsm.subtle.decrypt(params, token, ours)), data)
        ours[0] ^= 1
        await assert.rejects(hsm.subtle.decrypt(params, token, ours), REJECTED)
      }
    }
    await assert.rejects(hsm.subtle.encrypt({ name: 'AES-GCM', iv, tagLength: 100 }, token, plaintext), { name: 'OperationError' })
    await assert.rejects(hsm.subtle.encrypt({ name: 'AES-GCM' }, token, plaintext), TypeError)
    await assert.rejects(hsm.subtle.decrypt({ name: 'AES-GCM', iv }, token, Buffer.alloc(15)), { name: 'OperationError' })
    assert.deepEqual(
      Buffer.from(await hsm.subtle.encrypt({ name: 'AES-GCM', iv }, token, new Uint8Array(0))),
      Buffer.from(await node.encrypt({ name: 'AES-GCM', iv }, software, new Uint8Array(0))),
    )
  })

  test('AES-CBC and AES-CTR match Node; bad padding is the one OperationError', async () => {
    const value = randomBytes(32)
    const cbc = await aesPair('AES-CBC', value, ['encrypt', 'decrypt'])
    for (const length of [0, 1, 15, 16, 17, 100]) {
      const params = { name: 'AES-CBC', iv: randomBytes(16) }
      const data = randomBytes(length)
      const ours = Buffer.from(await hsm.subtle.encrypt(params, cbc.token, data))
      assert.deepEqual(ours, Buffer.from(await node.encrypt(params, cbc.software, data)))
      assert.deepEqual(Buffer.from(await hsm.subtle.decrypt(params, cbc.token, ours)), data)
    }
    const iv = randomBytes(16)
    const padded = Buffer.from(await node.encrypt({ name: 'AES-CBC', iv }, cbc.software, randomBytes(16)))
    padded[padded.length - 1] ^= 0x5a
    await assert.rejects(hsm.subtle.decrypt({ name: 'AES-CBC', iv }, cbc.token, padded), REJECTED)
    await assert.rejects(hsm.subtle.decrypt({ name: 'AES-CBC', iv }, cbc.token, Buffer.alloc(17)), { name: 'OperationError' })
    await assert.rejects(hsm.subtle.encrypt({ name: 'AES-CBC', iv: Buffer.alloc(8) }, cbc.token, padded), { name: 'OperationError' })
    const ctr = await aesPair('AES-CTR', value, ['encrypt', 'decrypt'])
    for (const length of [128, 64]) {
      const params = { name: 'AES-CTR', counter: randomBytes(16), length }
      const data = randomBytes(77)
      const ours = Buffer.from(await hsm.subtle.encrypt(params, ctr.token, data))
      assert.deepEqual(ours, Buffer.from(await node.encrypt(params, ctr.software, data)))
      assert.deepEqual(Buffer.from(await hsm.subtle.decrypt(params, ctr.token, ours)), data)
    }
  })

  test('AES-KW: RFC 3394 test vectors 4.1 and 4.6, both ways; a bad integrity check is the one OperationError', async () => {
    const vectors = [
      ['000102030405060708090A0B0C0D0E0F', '00112233445566778899AABBCCDDEEFF', '1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5'],
      [
        '000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F',
        '00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F',
        '28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21',
      ],
    ]
    const uninstall = hsm.installGlobal()
    try {
      for (const [kek, keyData, wrapped] of vectors) {
        const wrapping = await hsm.subtle.importKey('raw', hex(kek), 'AES-KW', false, ['wrapKey', 'unwrapKey'])
        const key = await node.importKey('raw', hex(keyData), 'AES-CBC', true, ['encrypt'])
        assert.deepEqual(Buffer.from(await hsm.subtle.wrapKey('raw', key, wrapping, 'AES-KW')), hex(wrapped))
        // On the routing global the unwrapped key is Node's (jose exports it) ...
        const unwrapped = await globalThis.crypto.subtle.unwrapKey('raw', hex(wrapped), wrapping, 'AES-KW', 'AES-CBC', true, ['encrypt'])
        assert.ok(!(unwrapped instanceof TokenCryptoKey))
        assert.deepEqual(Buffer.from(await node.exportKey('raw', unwrapped)), hex(keyData))
        // ... on hsm.subtle a token key.
        const onToken = await hsm.subtle.unwrapKey('raw', hex(wrapped), wrapping, 'AES-KW', 'AES-CBC', false, ['encrypt'])
        assert.ok(onToken instanceof TokenCryptoKey)
        const bad = hex(wrapped)
        bad[3] ^= 1
        await assert.rejects(hsm.subtle.unwrapKey('raw', bad, wrapping, 'AES-KW', 'AES-CBC', true, ['encrypt']), REJECTED)
      }
    } finally {
      uninstall()
    }
  })

  test('wrapKey: a non-extractable token key is refused, an extractable one is wrapped; AES-GCM wraps too', async () => {
    const kw = await hsm.subtle.importKey('raw', randomBytes(16), 'AES-KW', false, ['wrapKey', 'unwrapKey'])
    const secret = await hsm.subtle.importKey('raw', randomBytes(32), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
    await assert.rejects(hsm.subtle.wrapKey('raw', secret, kw, 'AES-KW'), { name: 'InvalidAccessError' })
    const value = randomBytes(32)
    const extractable = await hsm.subtle.importKey('raw', value, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign'])
    const wrapped = await hsm.subtle.wrapKey('raw', extractable, kw, 'AES-KW')
    const back = await hsm.subtle.unwrapKey('raw', wrapped, kw, 'AES-KW', { name: 'HMAC', hash: 'SHA-256' }, true, ['sign'])
    assert.deepEqual(Buffer.from(await hsm.subtle.exportKey('raw', back)), value)
    const gcmValue = randomBytes(16)
    const gcm = await hsm.subtle.importKey('raw', gcmValue, 'AES-GCM', false, ['wrapKey', 'unwrapKey'])
    const iv = randomBytes(12)
    const hmacKey = await node.importKey('raw', value, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign'])
    const jwkWrapped = await hsm.subtle.wrapKey('jwk', hmacKey, gcm, { name: 'AES-GCM', iv })
    const decryptKey = await node.importKey('raw', gcmValue, 'AES-GCM', false, ['decrypt'])
    assert.equal(JSON.parse(Buffer.from(await node.decrypt({ name: 'AES-GCM', iv }, decryptKey, jwkWrapped)).toString()).k, value.toString('base64url'))
    const unwrapped = await hsm.subtle.unwrapKey('jwk', jwkWrapped, gcm, { name: 'AES-GCM', iv }, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign'])
    assert.deepEqual(Buffer.from(await hsm.subtle.exportKey('raw', unwrapped)), value)
  })

  test('10,000 mixed good and bad operations leave the token with the objects it had', async () => {
    const uninstall = hsm.installGlobal()
    const routed = globalThis.crypto.subtle
    const before = countObjects()
    const gcm = (await aesPair('AES-GCM', randomBytes(16), ['encrypt', 'decrypt'])).token
    const kw = await hsm.subtle.importKey('raw', randomBytes(16), 'AES-KW', false, ['wrapKey', 'unwrapKey'])
    const afterImports = countObjects()
    const cek = await node.importKey('raw', randomBytes(32), 'AES-GCM', true, ['encrypt'])
    const wrapped = Buffer.from(await hsm.subtle.wrapKey('raw', cek, kw, 'AES-KW'))
    const peer = await node.generateKey(agreement('P-256'), true, ['deriveBits'])
    const oaepGood = Buffer.from(await node.encrypt('RSA-OAEP', oaep.publicKey, Buffer.from('x')))
    const iv = randomBytes(12)
    const sealed = Buffer.from(await hsm.subtle.encrypt({ name: 'AES-GCM', iv }, gcm, Buffer.from('hello')))
    const broken = (bytes) => {
      const b = Buffer.from(bytes)
      b[b.length >> 1] ^= 1
      return b
    }
    const small = await node.importKey('raw', Buffer.alloc(32), 'X25519', true, [])
    const operations = [
      () => routed.unwrapKey('raw', wrapped, kw, 'AES-KW', 'AES-GCM', true, ['encrypt']),
      () => routed.unwrapKey('raw', broken(wrapped), kw, 'AES-KW', 'AES-GCM', true, ['encrypt']),
      () => hsm.subtle.wrapKey('raw', cek, kw, 'AES-KW'),
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
      () => hsm.subtle.deriveBits({ name: 'ECDH', public: peer.publicKey }, ecdh['P-256'].privateKey, 256),
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'X25519' does not exist on type '{}'.
      () => hsm.subtle.deriveBits({ name: 'X25519', public: small }, ecdh.X25519.privateKey, 256),
      () => hsm.subtle.decrypt({ name: 'AES-GCM', iv }, gcm, sealed),
      () => hsm.subtle.decrypt({ name: 'AES-GCM', iv }, gcm, broken(sealed)),
      () => hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, broken(oaepGood)),
    ]
    let failed = 0
    const total = 10_000
    for (let done = 0; done < total; done += 200) {
      const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => operations[(done + i) % operations.length]()))
      for (const r of results)
        if (r.status === 'rejected') {
          failed++
          assert.equal(r.reason.message, REJECTED.message)
        }
    }
    assert.ok(failed >= (total * 4) / 8 - 1, `${failed} failed`)
    uninstall()
    assert.equal(countObjects(), afterImports)
    assert.equal(afterImports - before, 2)
  })
})
