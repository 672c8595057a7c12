// Issue #15: token keys are CryptoKeys to everyone. `instanceof CryptoKey` holds for every token key
// handed out, with or without installGlobal(); Node's own WebCrypto refuses them with an error
// that says what to use; inspect, JSON, Object.keys, for-in and structuredClone show what they
// show for Node's own non-extractable keys (the oracle), and never a PIN.
import assert from 'node:assert/strict'
import * as nodeCrypto from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { inspect } from 'node:util'
import { MessageChannel } from 'node:worker_threads'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'

const { webcrypto } = nodeCrypto
const softhsm = freshSoftHsm()
softhsm.initToken('keys')
const keys = provisionTestKeys(softhsm, 'keys')
const { Pkcs11Crypto, TokenCryptoKey, TokenKeyToNodeError } = await import('pkcs11-webcrypto')

const KEY_PIN = 'key-pin-3141592'
const E = new Uint8Array([1, 0, 1])
const data = new TextEncoder().encode('hello')

// Each token key, the JOSE alg it is fetched for, and Node's own key of the same description.
const ORACLES = [
  ['p256', 'ES256', () => webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])],
  ['p521', 'ES512', () => webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, false, ['sign', 'verify'])],
  ['rsa', 'RS256', () => webcrypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: E, hash: 'SHA-256' }, false, ['sign', 'verify'])],
  ['rsa', 'PS384', () => webcrypto.subtle.generateKey({ name: 'RSA-PSS', modulusLength: 2048, publicExponent: E, hash: 'SHA-384' }, false, ['sign', 'verify'])],
  ['ed25519', 'EdDSA', () => webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign', 'verify'])],
  // generated, not imported: Node 20's importKey orders HMAC members { name, hash, length }, its generateKey and Node 24 { name, length, hash }
  ['hmac', 'HS256', () => webcrypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', length: 512 }, false, ['sign', 'verify'])],
]
const nativeOf = async (make) => {
  const made = await make()
  return made.privateKey ?? made
}

/** Every CryptoKey class a caller can name: Node has it as a global only (not on node:crypto, nor on webcrypto). */
// @ts-expect-error TS2339 (converted from JavaScript): Property 'CryptoKey' does not exist on type 'typeof import("node:crypto")'.
const CRYPTO_KEY_CLASSES = [globalThis.CryptoKey, webcrypto.CryptoKey, nodeCrypto.CryptoKey].filter(Boolean)

function assertCryptoKey(key, what) {
  assert.ok(CRYPTO_KEY_CLASSES.length >= 1)
  for (const Class of CRYPTO_KEY_CLASSES) assert.ok(key instanceof Class, `${what} is instanceof CryptoKey`)
  assert.ok(CryptoKey.prototype.isPrototypeOf(key), `${what} has CryptoKey.prototype in its chain`)
  assert.ok(key instanceof TokenCryptoKey, `${what} is a token key`)
  assert.equal(Object.prototype.toString.call(key), '[object CryptoKey]')
}

describe('token keys are instances of CryptoKey', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'keys' }, pin: PIN })
  })
  after(async () => {
    await hsm?.close()
  })

  test("Node's own keys are of the same class (the class tested is Node's)", async () => {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'privateKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
    const { privateKey } = await webcrypto.subtle.generateKey({ name: 'Ed25519' }, false, ['sign'])
    for (const Class of CRYPTO_KEY_CLASSES) assert.ok(privateKey instanceof Class)
    assert.equal(Object.getPrototypeOf(Object.getPrototypeOf(privateKey)), CryptoKey.prototype)
  })

  test('keys.get, keys.generate, subtle.generateKey and subtle.importKey hand out CryptoKeys, before, during and after installGlobal()', async () => {
    const made = []
    for (const [label, alg] of ORACLES) made.push([`keys.get ${label} ${alg}`, (await hsm.keys.get({ label }, { algorithm: alg })).privateKey])
    made.push(['keys.generate ES256', (await hsm.keys.generate({ algorithm: 'ES256', label: 'generated', persistent: false })).privateKey])
    const pair = await hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384', label: 'pair' }, false, ['sign', 'verify'])
    made.push(['subtle.generateKey ECDSA', pair.privateKey])
    made.push(['subtle.generateKey HMAC', await hsm.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', label: 'mac' }, false, ['sign'])])
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'ed25519' does not exist on type '{}'.
    const pkcs8 = keys.ed25519.privateKey.export({ format: 'der', type: 'pkcs8' })
    made.push(['subtle.importKey pkcs8', await hsm.subtle.importKey('pkcs8', pkcs8, { name: 'Ed25519', label: 'imported' }, false, ['sign'])])
    made.push(['subtle.importKey raw HMAC', await hsm.subtle.importKey('raw', nodeCrypto.randomBytes(32), { name: 'HMAC', hash: 'SHA-256', label: 'raw' }, false, ['sign'])])

    for (const [what, key] of made) assertCryptoKey(key, what)
    const uninstall = hsm.installGlobal()
    try {
      for (const [what, key] of made) assertCryptoKey(key, `${what} (installed)`)
      // the keys made while installed are no different, and sign through the global
      const { privateKey } = await hsm.keys.get({ label: 'p256' })
      assertCryptoKey(privateKey, 'keys.get while installed')
      assert.equal((await globalThis.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data)).byteLength, 64)
    } finally {
      uninstall()
    }
    for (const [what, key] of made) assertCryptoKey(key, `${what} (uninstalled)`)
    // the public halves are Node's own keys, as before
    assert.ok(pair.publicKey instanceof CryptoKey)
    assert.equal(pair.publicKey instanceof TokenCryptoKey, false)
  })
})

describe("Node's own WebCrypto refuses token keys with an error that says what to use", () => {
  let hsm
  let ec
  let hmac
  let nodeAes
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'keys' }, pin: PIN })
    ec = (await hsm.keys.get({ label: 'p256' })).privateKey
    hmac = (await hsm.keys.get({ label: 'hmac' })).privateKey
    nodeAes = await webcrypto.subtle.generateKey({ name: 'AES-KW', length: 256 }, true, ['wrapKey', 'unwrapKey'])
  })
  after(async () => {
    await hsm?.close()
  })

  /** Every call of Node's SubtleCrypto that can be handed a token key, on `subtle`. */
  const CALLS = [
    ['sign', (subtle) => subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec, data)],
    ['verify', (subtle) => subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec, new Uint8Array(64), data)],
    ['sign', (subtle) => subtle.sign('HMAC', hmac, data)],
    ['exportKey', (subtle) => subtle.exportKey('jwk', ec)],
    ['encrypt', (subtle) => subtle.encrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, hmac, data)],
    ['decrypt', (subtle) => subtle.decrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, hmac, data)],
    ['wrapKey', (subtle) => subtle.wrapKey('raw', hmac, nodeAes, 'AES-KW')],
    ['wrapKey', (subtle) => subtle.wrapKey('raw', nodeAes, hmac, 'AES-KW')],
    ['unwrapKey', (subtle) => subtle.unwrapKey('raw', new Uint8Array(40), hmac, 'AES-KW', 'AES-GCM', true, ['encrypt'])],
    ['deriveBits', (subtle) => subtle.deriveBits({ name: 'ECDH', public: ec }, ec, 256)],
    [
      'deriveKey',
      (subtle) => subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(), info: new Uint8Array() }, hmac, { name: 'AES-GCM', length: 256 }, false, ['encrypt']),
    ],
  ]

  async function assertRefused(subtle, where) {
    for (const [method, call] of CALLS) {
      // @ts-expect-error TS2349 (converted from JavaScript): This expression is not callable.
      const pending = call(subtle)
      assert.ok(pending instanceof Promise, `${method} rejects, it does not throw`)
      await assert.rejects(
        pending,
        (error) => {
          assert.ok(error instanceof TypeError, `${where} ${method}: a TypeError`)
          assert.ok(error instanceof TokenKeyToNodeError)
          assert.equal(error.name, 'TypeError')
          assert.equal(error.code, 'ERR_PKCS11_TOKEN_KEY_TO_NODE')
          assert.match(error.message, new RegExp(`SubtleCrypto\\.${method}\\(\\).*hsm\\.subtle\\.${method}\\(\\).*hsm\\.installGlobal\\(\\)`))
          assert.doesNotMatch(error.message, /kHandle|undefined/)
          return true
        },
        `${where} ${method}`,
      )
    }
  }

  test("without installGlobal(): globalThis.crypto and node:crypto's webcrypto are Node's", async () => {
    assert.equal(globalThis.crypto.subtle, webcrypto.subtle)
    await assertRefused(globalThis.crypto.subtle, 'global')
    await assertRefused(nodeCrypto.subtle, 'node:crypto')
  })

  test("a crypto.subtle kept from before installGlobal() is still Node's, and refuses them", async () => {
    const kept = globalThis.crypto.subtle
    const uninstall = hsm.installGlobal()
    try {
      await assertRefused(kept, 'kept')
      // the routed global serves the same key
      assert.equal((await globalThis.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec, data)).byteLength, 64)
    } finally {
      uninstall()
    }
  })

  test("Node 24's newer methods refuse them too", async (t) => {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'getPublicKey' does not exist on type 'SubtleCrypto'.
    if (typeof webcrypto.subtle.getPublicKey !== 'function') return t.skip(`Node ${process.version} has no SubtleCrypto.getPublicKey`)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'getPublicKey' does not exist on type 'SubtleCrypto'.
    await assert.rejects(webcrypto.subtle.getPublicKey(ec, ['verify']), { code: 'ERR_PKCS11_TOKEN_KEY_TO_NODE' })
  })

  test('a token key as the `public` member matters only when deriving, as Node reads it only then', async () => {
    const expected = nodeCrypto.createHash('sha256').update(data).digest()
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'public' does not exist in type 'Algorithm'.
    assert.deepEqual(Buffer.from(await webcrypto.subtle.digest({ name: 'SHA-256', public: ec }, data)), expected)
    assert.deepEqual(Buffer.from(await hsm.subtle.digest({ name: 'SHA-256', public: ec }, data)), expected)
    // hsm.subtle hands Node a Node key with a token key beside it: Node's own error, not a refusal
    await assert.rejects(hsm.subtle.sign({ name: 'ECDH', public: ec }, nodeAes, data), { name: 'NotSupportedError' })
  })

  test('every other call reaches Node unchanged: results, errors, method names and lengths', async () => {
    const { privateKey, publicKey } = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
    const signature = await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data)
    assert.equal(await webcrypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, signature, data), true)
    assert.ok(nodeCrypto.verify('sha256', data, { key: nodeCrypto.KeyObject.from(publicKey), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature)))
    assert.deepEqual(Buffer.from(await webcrypto.subtle.digest('SHA-256', data)), nodeCrypto.createHash('sha256').update(data).digest())
    await assert.rejects(webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, publicKey, data), { name: 'InvalidAccessError' })
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'not' does not exist in type 'CryptoKey'.
    await assert.rejects(webcrypto.subtle.sign('ECDSA', { not: 'a key' }, data), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    await assert.rejects(Reflect.apply(webcrypto.subtle.digest, {}, ['SHA-256', data]), { code: 'ERR_INVALID_THIS' })
    assert.deepEqual([webcrypto.subtle.sign.name, webcrypto.subtle.sign.length], ['sign', 3])
    assert.deepEqual([webcrypto.subtle.unwrapKey.name, webcrypto.subtle.unwrapKey.length], ['unwrapKey', 7])
  })
})

describe("a token key looks as Node's own non-extractable key of the same description", () => {
  let hsm
  const pairs = [] // [what, token key, Node's key]
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'keys' }, pin: PIN })
    for (const [label, alg, make] of ORACLES) {
      const { privateKey } = await hsm.keys.get({ label }, { algorithm: alg, keyPin: KEY_PIN })
      pairs.push([`${label} ${alg}`, privateKey, await nativeOf(make)])
    }
  })
  after(async () => {
    await hsm?.close()
  })

  test('type, extractable, algorithm and usages', () => {
    for (const [what, token, native] of pairs) {
      for (const member of ['type', 'extractable', 'algorithm', 'usages']) assert.deepEqual(token[member], native[member], `${what} ${member}`)
    }
  })

  test('util.inspect, at every depth, with colors, nested, in an array', () => {
    for (const [what, token, native] of pairs) {
      for (const options of [{}, { depth: 0 }, { depth: 4 }, { colors: true }, { compact: false }, { breakLength: Infinity }]) {
        assert.equal(inspect(token, options), inspect(native, options), `${what} ${JSON.stringify(options)}`)
        assert.equal(inspect({ key: token }, options), inspect({ key: native }, options), `${what} nested ${JSON.stringify(options)}`)
        assert.equal(inspect([token], options), inspect([native], options), `${what} in an array ${JSON.stringify(options)}`)
      }
      assert.equal(`${token}`, `${native}`)
    }
  })

  test('JSON.stringify, Object.keys, for-in and own properties', () => {
    for (const [what, token, native] of pairs) {
      assert.equal(JSON.stringify(token), JSON.stringify(native), what)
      assert.equal(JSON.stringify({ key: token }), JSON.stringify({ key: native }), what)
      assert.deepEqual(Object.keys(token), Object.keys(native), what)
      assert.deepEqual(Object.entries(token), Object.entries(native), what)
      const forIn = (key) => {
        const names = []
        for (const name in key) names.push(name)
        return names
      }
      assert.deepEqual(forIn(token), forIn(native), what)
      assert.deepEqual({ ...token }, { ...native }, `${what} spread`)
      // Node 24's keys have no own properties; Node 20's have four internal symbols. Ours have none.
      assert.deepEqual(Reflect.ownKeys(token), [], what)
    }
  })

  test('structuredClone and postMessage refuse a token key (DataCloneError), naming no handle or PIN', async () => {
    for (const [what, token, native] of pairs) {
      const copy = structuredClone(native) // Node's own key is copied, and is still a CryptoKey
      assert.ok(copy instanceof CryptoKey)
      assert.deepEqual(copy.algorithm, native.algorithm)
      for (const value of [token, { nested: [token] }]) {
        assert.throws(
          () => structuredClone(value),
          (error) => {
            // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
            assert.equal(error.name, 'DataCloneError', what)
            assert.ok(error instanceof DOMException)
            assert.equal(error.message, '#<TokenCryptoKey> could not be cloned.')
            return true
          },
        )
      }
      const { port1, port2 } = new MessageChannel()
      try {
        assert.throws(() => port1.postMessage({ key: token }), { name: 'DataCloneError' })
      } finally {
        port1.close()
        port2.close()
      }
    }
  })

  test('no inspection shows the key PIN or the object handle: hidden members, the proxy, getters', () => {
    for (const [what, token] of pairs) {
      const plain = inspect(token)
      for (const options of [
        { showHidden: true, depth: Infinity, getters: true },
        { showProxy: true, showHidden: true, depth: Infinity },
      ]) {
        const shown = inspect(token, options)
        assert.ok(!shown.includes(KEY_PIN), `${what}: ${shown}`)
        assert.ok(shown.includes(plain.split('\n')[0]), `${what} shows what it shows without options: ${shown}`)
        assert.doesNotMatch(shown, /handle|signer|object|Pin|keyPin/i, what)
      }
      assert.ok(!JSON.stringify(Object.getOwnPropertyDescriptors(token)).includes(KEY_PIN))
    }
  })

  test('the description cannot be changed through the key', () => {
    const [, token] = pairs[0]
    assert.throws(() => {
      token.usages.push('verify')
    }, TypeError)
    assert.throws(() => {
      token.algorithm.namedCurve = 'P-384'
    }, TypeError)
    assert.throws(() => {
      'use strict'
      token.type = 'public'
    }, TypeError)
    assert.deepEqual([token.type, token.algorithm.namedCurve, token.usages], ['private', 'P-256', ['sign']])
  })

  test("a getter called on something else is an illegal invocation, as for Node's own", () => {
    const getter = Object.getOwnPropertyDescriptor(TokenCryptoKey.prototype, 'type').get
    assert.throws(() => getter.call({}), TypeError)
    assert.throws(() => getter.call(pairs[0][2]), TypeError)
  })
})
