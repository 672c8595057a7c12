// Prints, as JSON, the attributes of the token objects with a given CKA_LABEL (or of all objects
// when the label is '*'), read through the raw pkcs11js binding in its own process, so that tests
// can check what the library wrote without asking the library.
// usage: node raw-attributes.cjs MODULE TOKEN_LABEL PIN LABEL
const pkcs11js = require('pkcs11js')
const [modulePath, tokenLabel, pin, label] = process.argv.slice(2)

const CLASS = { [pkcs11js.CKO_PRIVATE_KEY]: 'private', [pkcs11js.CKO_PUBLIC_KEY]: 'public', [pkcs11js.CKO_SECRET_KEY]: 'secret', [pkcs11js.CKO_CERTIFICATE]: 'certificate', [pkcs11js.CKO_DATA]: 'data' }
const KEY_TYPE = { [pkcs11js.CKK_RSA]: 'RSA', [pkcs11js.CKK_EC]: 'EC', [0x40 /* CKK_EC_EDWARDS, PKCS#11 3.0: not in pkcs11js */]: 'EC_EDWARDS', [pkcs11js.CKK_GENERIC_SECRET]: 'GENERIC_SECRET', [pkcs11js.CKK_AES]: 'AES' }
const BOOLEANS = {
  token: pkcs11js.CKA_TOKEN, private: pkcs11js.CKA_PRIVATE, sensitive: pkcs11js.CKA_SENSITIVE, extractable: pkcs11js.CKA_EXTRACTABLE,
  alwaysSensitive: pkcs11js.CKA_ALWAYS_SENSITIVE, neverExtractable: pkcs11js.CKA_NEVER_EXTRACTABLE, local: pkcs11js.CKA_LOCAL,
  sign: pkcs11js.CKA_SIGN, verify: pkcs11js.CKA_VERIFY, encrypt: pkcs11js.CKA_ENCRYPT, decrypt: pkcs11js.CKA_DECRYPT,
  wrap: pkcs11js.CKA_WRAP, unwrap: pkcs11js.CKA_UNWRAP, derive: pkcs11js.CKA_DERIVE, alwaysAuthenticate: pkcs11js.CKA_ALWAYS_AUTHENTICATE,
}
const BYTES = { id: pkcs11js.CKA_ID, modulus: pkcs11js.CKA_MODULUS, publicExponent: pkcs11js.CKA_PUBLIC_EXPONENT, ecParams: pkcs11js.CKA_EC_PARAMS, ecPoint: pkcs11js.CKA_EC_POINT, value: pkcs11js.CKA_VALUE, serialNumber: pkcs11js.CKA_SERIAL_NUMBER }
const ULONGS = { class: pkcs11js.CKA_CLASS, keyType: pkcs11js.CKA_KEY_TYPE, valueLen: pkcs11js.CKA_VALUE_LEN, modulusBits: pkcs11js.CKA_MODULUS_BITS }

const ulong = (b) => (b.length >= 8 ? Number(b.readBigUInt64LE(0)) : b.readUInt32LE(0))

const p11 = new pkcs11js.PKCS11()
p11.load(modulePath)
p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
try {
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === tokenLabel)
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
  p11.C_Login(session, pkcs11js.CKU_USER, pin)
  p11.C_FindObjectsInit(session, label === '*' ? [] : [{ type: pkcs11js.CKA_LABEL, value: label }])
  const handles = []
  for (let batch; (batch = p11.C_FindObjects(session, 100)).length > 0;) handles.push(...batch)
  p11.C_FindObjectsFinal(session)
  const read = (handle, type) => {
    try {
      return p11.C_GetAttributeValue(session, handle, [{ type }])[0].value
    } catch {
      return undefined // absent or sensitive
    }
  }
  const objects = handles.map((handle) => {
    const object = {}
    for (const [name, type] of Object.entries(ULONGS)) {
      const v = read(handle, type)
      if (v?.length) object[name] = ulong(v)
    }
    object.class = CLASS[object.class] ?? object.class
    if (object.keyType !== undefined) object.keyType = KEY_TYPE[object.keyType] ?? object.keyType
    for (const [name, type] of Object.entries(BOOLEANS)) {
      const v = read(handle, type)
      if (v?.length) object[name] = v[0] === 1
    }
    for (const [name, type] of Object.entries(BYTES)) {
      const v = read(handle, type)
      if (v !== undefined) object[name] = v.toString('hex')
    }
    const l = read(handle, pkcs11js.CKA_LABEL)
    object.label = l === undefined ? undefined : l.toString('utf8')
    return object
  })
  process.stdout.write(JSON.stringify(objects))
  p11.C_CloseSession(session)
} finally {
  p11.C_Finalize()
}
