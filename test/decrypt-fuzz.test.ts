// Issue #13: a seeded fuzz of decrypt, encrypt, deriveBits, deriveKey, wrapKey and unwrapKey with
// token keys: 3,000 calls with random algorithm members (wrong types, sizes, lengths, nulls),
// random data and tampered inputs. Every call settles, with a result or an error the WebCrypto
// specification names; the process survives (pkcs11js aborts on a parameter it cannot convert)
// and the token's object count is what it was.
import assert from 'node:assert/strict'
import { webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { objectCounter } from './helpers/other-user.js'

const softhsm = freshSoftHsm()
softhsm.initToken('fuzz13')
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle
const SPEC = new Set(['TypeError', 'NotSupportedError', 'InvalidAccessError', 'DataError', 'OperationError', 'SyntaxError'])

/** A small seeded generator (mulberry32), so that a failure can be replayed. */
function random(seed) {
  let a = seed
  return () => {
    a |= 0
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

describe('fuzzing the new operations', () => {
  let hsm, keys, countObjects
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'fuzz13' }, pin: PIN })
    countObjects = objectCounter(softhsm.module, 'fuzz13')
    keys = {
      oaep: await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'oaep', persistent: false }),
      ecdh: await hsm.keys.generate({ algorithm: 'ECDH-ES', label: 'ecdh', persistent: false }),
      x: await hsm.keys.generate({ algorithm: 'ECDH-ES', namedCurve: 'X25519', label: 'x', persistent: false }),
      gcm: await hsm.subtle.importKey('raw', new Uint8Array(16).fill(1), 'AES-GCM', false, ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']),
      cbc: await hsm.subtle.importKey('raw', new Uint8Array(16).fill(2), 'AES-CBC', false, ['encrypt', 'decrypt']),
      ctr: await hsm.subtle.importKey('raw', new Uint8Array(16).fill(3), 'AES-CTR', false, ['encrypt', 'decrypt']),
      kw: await hsm.subtle.importKey('raw', new Uint8Array(16).fill(4), 'AES-KW', false, ['wrapKey', 'unwrapKey']),
      peer: await node.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits']),
      xpeer: await node.generateKey({ name: 'X25519' }, true, ['deriveBits']),
      cek: await node.importKey('raw', new Uint8Array(32), 'AES-GCM', true, ['encrypt']),
    }
  })
  after(() => hsm?.close())

  test('3,000 random calls: each settles as the specification says; nothing is left on the token', async () => {
    const rnd = random(13)
    const pick = (list) => list[Math.floor(rnd() * list.length)]
    const bytes = () => new Uint8Array(pick([0, 1, 7, 8, 12, 15, 16, 17, 24, 31, 32, 40, 64, 255, 256, 257])).map(() => rnd() * 256)
    const junk = () => pick([undefined, null, 0, -1, 2 ** 40, NaN, 'x', {}, [], bytes(), bytes().buffer, new Uint16Array(3), Symbol.for('s')])
    const maybe = (value) => (rnd() < 0.8 ? value : junk())
    const before = countObjects()
    const calls = []
    for (let i = 0; i < 3000; i++) {
      const kind = pick(['oaep', 'gcm', 'cbc', 'ctr', 'ecdh', 'x', 'kw-wrap', 'kw-unwrap', 'derive-key'])
      const data = maybe(bytes())
      let call
      if (kind === 'oaep') call = () => hsm.subtle.decrypt(maybe({ name: 'RSA-OAEP', label: rnd() < 0.1 ? bytes() : undefined }), keys.oaep.privateKey, data)
      if (kind === 'gcm')
        call = () =>
          hsm.subtle[pick(['encrypt', 'decrypt'])](
            maybe({
              name: 'AES-GCM',
              iv: maybe(bytes()),
              additionalData: rnd() < 0.3 ? maybe(bytes()) : undefined,
              tagLength: rnd() < 0.3 ? maybe(pick([32, 96, 128, 100, 0, 256])) : undefined,
            }),
            keys.gcm,
            data,
          )
      if (kind === 'cbc') call = () => hsm.subtle[pick(['encrypt', 'decrypt'])](maybe({ name: 'AES-CBC', iv: maybe(new Uint8Array(16)) }), keys.cbc, data)
      if (kind === 'ctr')
        call = () =>
          hsm.subtle[pick(['encrypt', 'decrypt'])](maybe({ name: 'AES-CTR', counter: maybe(new Uint8Array(16)), length: maybe(pick([1, 64, 128, 0, 129])) }), keys.ctr, data)
      if (kind === 'ecdh')
        call = () => hsm.subtle.deriveBits(maybe({ name: 'ECDH', public: maybe(keys.peer.publicKey) }), keys.ecdh.privateKey, maybe(pick([null, 8, 256, 257, 1000])))
      if (kind === 'x') call = () => hsm.subtle.deriveBits(maybe({ name: 'X25519', public: maybe(keys.xpeer.publicKey) }), keys.x.privateKey, maybe(pick([null, 256])))
      if (kind === 'kw-wrap') call = () => hsm.subtle.wrapKey(maybe('raw'), keys.cek, keys.kw, maybe('AES-KW'))
      if (kind === 'kw-unwrap') call = () => hsm.subtle.unwrapKey('raw', data, keys.kw, maybe('AES-KW'), maybe('AES-GCM'), true, ['encrypt'])
      if (kind === 'derive-key')
        call = () =>
          hsm.subtle.deriveKey({ name: 'ECDH', public: keys.peer.publicKey }, keys.ecdh.privateKey, maybe({ name: 'AES-GCM', length: maybe(pick([128, 256, 100])) }), true, [
            'encrypt',
          ])
      calls.push(
        Promise.resolve()
          .then(call)
          .then(
            () => 'ok',
            (error) => {
              assert.ok(SPEC.has(error?.name), `call ${i} (${kind}): ${error?.name}: ${error?.message}`)
              return error.name
            },
          ),
      )
    }
    const outcomes = await Promise.all(calls)
    assert.ok(outcomes.filter((o) => o === 'ok').length > 300, 'some calls succeed')
    assert.ok(outcomes.filter((o) => o === 'OperationError').length > 100, 'some are refused')
    // (An unwrapKey of random bytes on hsm.subtle would import a token key: AES-KW's check makes that 2^-64.)
    assert.equal(countObjects(), before, 'no object left behind')
  })
})
