// Writes a generic secret (HMAC) key with a known value through the raw binding, in its own
// process so that it never shares a C_Initialize with the library under test.
// usage: node create-secret.cjs MODULE TOKEN_LABEL PIN KEY_LABEL ID_HEX VALUE_HEX
const pkcs11js = require('pkcs11js')
const [modulePath, tokenLabel, pin, label, id, value] = process.argv.slice(2)
const p11 = new pkcs11js.PKCS11()
p11.load(modulePath)
p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
try {
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === tokenLabel)
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  p11.C_Login(session, pkcs11js.CKU_USER, pin)
  p11.C_CreateObject(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_GENERIC_SECRET },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_SIGN, value: true },
    { type: pkcs11js.CKA_VERIFY, value: true },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: Buffer.from(id, 'hex') },
    { type: pkcs11js.CKA_VALUE, value: Buffer.from(value, 'hex') },
  ])
  p11.C_CloseSession(session)
} finally {
  p11.C_Finalize()
}
