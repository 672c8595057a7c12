// Counts every object on a token (token and session objects, private ones included) through the
// raw binding, sharing the process's C_Initialize and login with the library under test.
import pkcs11js from 'pkcs11js'

/** A counter for the token labelled `label`; call it after the library has opened the token. */
export function objectCounter(modulePath, label) {
  const p11 = new pkcs11js.PKCS11()
  p11.load(modulePath)
  try {
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
  } catch (error) {
    if (error.code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error
  }
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label)
  return () => {
    const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
    try {
      p11.C_FindObjectsInit(session, [])
      let count = 0
      for (let found; (found = p11.C_FindObjects(session, 100)).length > 0;) count += found.length
      p11.C_FindObjectsFinal(session)
      return count
    } finally {
      p11.C_CloseSession(session)
    }
  }
}
