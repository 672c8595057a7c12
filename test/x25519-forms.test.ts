// Issue #13: X25519 keys as SoftHSM 2.6.1 can make them (it has no CKK_EC_MONTGOMERY): an Edwards
// key pair generated with CKA_EC_PARAMS = the X25519 OID, or the PrintableString "curve25519",
// made here with the raw binding. Both kinds are found, listed and derive Node's Z.
import assert from 'node:assert/strict'
import { webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import pkcs11js from 'pkcs11js'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { withOtherSession } from './helpers/other-user.js'

const softhsm = freshSoftHsm()
softhsm.initToken('x25519')
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle
const FORMS = { oid: Buffer.from('06032b656e', 'hex'), printable: Buffer.concat([Buffer.from([0x13, 10]), Buffer.from('curve25519')]) }
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055

/** Makes an X25519 pair with `params` through the raw binding, sharing the library's login. */
function makePair(label, id, params) {
  withOtherSession(softhsm.module, 'x25519', (p11, session) => {
    const common = [
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: Buffer.from(id, 'hex') },
    ]
    p11.C_GenerateKeyPair(
      session,
      { mechanism: CKM_EC_EDWARDS_KEY_PAIR_GEN },
      [...common, { type: pkcs11js.CKA_EC_PARAMS, value: params }],
      [
        ...common,
        { type: pkcs11js.CKA_PRIVATE, value: true },
        { type: pkcs11js.CKA_SENSITIVE, value: true },
        { type: pkcs11js.CKA_DERIVE, value: true },
        { type: pkcs11js.CKA_SIGN, value: false },
      ],
    )
  })
}

describe('X25519 keys in both CKA_EC_PARAMS forms', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'x25519' }, pin: PIN })
    makePair('x-oid', '11', FORMS.oid)
    makePair('x-printable', '12', FORMS.printable)
  })
  after(() => hsm?.close())

  for (const label of ['x-oid', 'x-printable']) {
    test(`${label}: found as X25519, listed with ECDH-ES, derives Node's Z`, async () => {
      const { privateKey, publicKey } = await hsm.keys.get({ label })
      assert.deepEqual(privateKey.algorithm, { name: 'X25519' })
      const listed = (await hsm.keys.list()).find((k) => k.label === label)
      assert.equal(listed.curve, 'X25519')
      assert.deepEqual(listed.algorithms, ['ECDH-ES', 'ECDH-ES+A128KW', 'ECDH-ES+A192KW', 'ECDH-ES+A256KW'])
      const peer = await node.generateKey({ name: 'X25519' }, true, ['deriveBits'])
      assert.deepEqual(
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'publicKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
        Buffer.from(await hsm.subtle.deriveBits({ name: 'X25519', public: peer.publicKey }, privateKey, null)),
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'privateKey' does not exist on type 'CryptoKeyPair | CryptoKey'.
        Buffer.from(await node.deriveBits({ name: 'X25519', public: publicKey }, peer.privateKey, null)),
      )
    })
  }
})
