// Every PKCS#11 failure comes out of the binding as a TokenError with its CKR_ code, including
// the calls whose pkcs11js wrappers throw a plain Error("CKR_X:n") (C_CreateObject,
// C_SetAttributeValue, C_CopyObject, C_FindObjects). Provoked on a real SoftHSM token.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { createRequire } from 'node:module'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const softhsm = freshSoftHsm()
softhsm.initToken('binding')
const pkcs11js = createRequire(import.meta.url)('pkcs11js')
const { callSync, sendable } = await import('../dist/pkcs11/binding.js')
const { TokenError } = await import('pkcs11-webcrypto')

let native, session
before(() => {
  native = new pkcs11js.PKCS11()
  native.load(softhsm.module)
  native.C_Initialize()
  const [slot] = native.C_GetSlotList(true)
  session = native.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  native.C_Login(session, pkcs11js.CKU_USER, PIN)
})
after(() => {
  native.C_CloseAllSessions(native.C_GetSessionInfo(session).slotID)
  native.C_Finalize()
  native.close()
})

const dataObject = [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_DATA },
  { type: pkcs11js.CKA_TOKEN, value: false },
]
const missing = Buffer.from([0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0])

function assertTokenError(fn, run, code) {
  assert.throws(
    () => callSync(fn, run),
    (error) => {
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'message' does not exist on type 'unknown'.
      assert.ok(error instanceof TokenError, `${fn}: ${error?.constructor?.name} ${error?.message}`)
      assert.equal(error.code, code)
      assert.equal(error.function, fn)
      assert.equal(error.returnValue, pkcs11js[code])
      assert.equal(error.message, `${fn} failed: ${code}`)
      return true
    },
  )
}

test('C_CreateObject, C_SetAttributeValue, C_CopyObject: TokenErrors with their CKR_ codes', () => {
  // A certificate with no value: SoftHSM says the template is incomplete.
  assertTokenError(
    'C_CreateObject',
    () =>
      native.C_CreateObject(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_CERTIFICATE },
        { type: pkcs11js.CKA_TOKEN, value: false },
      ]),
    'CKR_TEMPLATE_INCOMPLETE',
  )
  assertTokenError('C_SetAttributeValue', () => native.C_SetAttributeValue(session, missing, [{ type: pkcs11js.CKA_LABEL, value: 'x' }]), 'CKR_OBJECT_HANDLE_INVALID')
  assertTokenError('C_CopyObject', () => native.C_CopyObject(session, missing, []), 'CKR_OBJECT_HANDLE_INVALID')
  // The object exists and still cannot change class.
  const object = callSync('C_CreateObject', () => native.C_CreateObject(session, dataObject))
  assertTokenError(
    'C_SetAttributeValue',
    () => native.C_SetAttributeValue(session, object, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }]),
    'CKR_ATTRIBUTE_READ_ONLY',
  )
})

test('C_FindObjects without C_FindObjectsInit: a TokenError', () => {
  assertTokenError('C_FindObjects', () => native.C_FindObjects(session, 10), 'CKR_OPERATION_NOT_INITIALIZED')
})

test('a malformed template is a TypeError before pkcs11js sees it (pkcs11js refusing one corrupts the heap)', () => {
  const malformed = [
    [{ type: pkcs11js.CKA_LABEL, value: {} }],
    [{ type: pkcs11js.CKA_LABEL, value: 12n }],
    [{ type: pkcs11js.CKA_LABEL, value: new Uint8Array(2) }],
    [{ type: 'label', value: 'x' }],
    [{ type: -1, value: 'x' }],
    [dataObject[0], null],
    [{ type: pkcs11js.CKA_START_DATE, value: '20260101' }],
    { length: 1, 0: dataObject[0] },
  ]
  for (const template of malformed) {
    // sendable itself refuses it: pkcs11js would throw a TypeError of its own too, after the damage.
    assert.throws(
      () => sendable(template as never),
      { name: 'TypeError', message: /PKCS#11|attribute 0x/ },
      JSON.stringify(template, (_, v) => (typeof v === 'bigint' ? `${v}n` : v)),
    )
  }
  const template = [
    ...dataObject,
    { type: pkcs11js.CKA_LABEL, value: 'ok' },
    { type: pkcs11js.CKA_VALUE, value: Buffer.from('v') },
    { type: pkcs11js.CKA_APPLICATION, value: undefined },
  ]
  assert.equal(sendable(template), template)
  assert.ok(callSync('C_CreateObject', () => native.C_CreateObject(session, sendable(template))))
})
