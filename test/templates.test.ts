// Key templates say what is asked, and a template the module refuses fails naming the operation
// and what was asked. The refusals are injected by the fault module over a real SoftHSM token.
import assert from 'node:assert/strict'
import { generateKeyPairSync } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { buildFaultModule, FaultControl } from './helpers/fault.js'

const LABEL = 'templates'
const softhsm = freshSoftHsm()
softhsm.initToken(LABEL)
const control = new FaultControl()
Object.assign(process.env, control.env) // before the fault module is first loaded
const faultModule = buildFaultModule()
const { Pkcs11Crypto, TokenError } = await import('pkcs11-webcrypto')

/** An OperationError whose cause is the TokenError with `message`. */
const causeSays = (message) => (error) => {
  assert.equal(error.name, 'OperationError', String(error))
  assert.ok(error.cause instanceof TokenError)
  assert.equal(error.cause.message, message)
  return true
}

describe('a refused template names what was asked', () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: faultModule, token: { label: LABEL }, pin: PIN })
  })
  after(() => hsm.close())

  test('keys.generate: the key pair asked, and nothing tried twice', async () => {
    const before = (await control.counts()).C_GenerateKeyPair
    control.fail('C_GenerateKeyPair', 'CKR_GENERAL_ERROR', { count: 1 })
    await assert.rejects(hsm.keys.generate({ algorithm: 'RS256', label: 'refused' }), (error) => {
      assert.ok(error instanceof TokenError, String(error))
      assert.equal(error.code, 'CKR_GENERAL_ERROR')
      assert.equal(error.message, 'C_GenerateKeyPair failed: CKR_GENERAL_ERROR (template: RSA 2048, sign+verify, token object)')
      return true
    })
    assert.equal((await control.counts()).C_GenerateKeyPair - before, 1)
  })

  test('subtle.generateKey and importKey: an OperationError whose cause says the template', async () => {
    control.fail('C_GenerateKeyPair', 0xd1 /* CKR_TEMPLATE_INCONSISTENT */, { count: 1 })
    await assert.rejects(
      hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, false, ['sign']),
      causeSays('C_GenerateKeyPair failed: CKR_TEMPLATE_INCONSISTENT (template: EC P-384, sign, session object)'),
    )
    control.fail('C_GenerateKey', 0x13 /* CKR_ATTRIBUTE_VALUE_INVALID */, { count: 1 })
    await assert.rejects(
      hsm.subtle.generateKey({ name: 'AES-GCM', length: 256, persistent: true }, true, ['encrypt', 'decrypt']),
      causeSays('C_GenerateKey failed: CKR_ATTRIBUTE_VALUE_INVALID (template: AES 256, encrypt+decrypt, token object, extractable)'),
    )
    const der = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'der', type: 'pkcs8' })
    control.fail('C_CreateObject', 0x12 /* CKR_ATTRIBUTE_TYPE_INVALID */, { count: 1 })
    await assert.rejects(
      hsm.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']),
      causeSays('C_CreateObject failed: CKR_ATTRIBUTE_TYPE_INVALID (template: EC P-256 public key, session object)'),
    )
  })
})
