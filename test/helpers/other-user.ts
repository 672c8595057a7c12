// Another PKCS#11 user of the same module in this process (as node-webcrypto-p11 or graphene would
// be): its own pkcs11js load of the library, which shares the module's state (login, sessions,
// C_Initialize) with the library under test, as PKCS#11 says every load in one process does.
import pkcs11js from 'pkcs11js'

/** A separate load of `library`, and the slot of the token labelled `label`. */
function load(library, label) {
  const native = new pkcs11js.PKCS11()
  native.load(library)
  try {
    native.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
  } catch (error) {
    if (error.code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error
  }
  const slot = native.C_GetSlotList(true).find((s) => native.C_GetTokenInfo(s).label.trim() === label)
  if (!slot) throw new Error(`no token ${label}`)
  return { native, slot }
}

/** Opens a session on the token labelled `label` through a separate load of `library`. */
export function otherUser(library, label) {
  const { native, slot } = load(library, label)
  const session = native.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  return {
    /** C_Logout: logs the whole application out of the token. */
    logout: () => native.C_Logout(session),
    /** C_CloseAllSessions: every session of the application on the token goes, and the login with them. */
    closeAllSessions: () => native.C_CloseAllSessions(slot),
  }
}

/** The label of the signing sessions' copies of keys (src/pkcs11/dispatch/session-copies.ts). */
export const COPY_LABEL = 'pkcs11-webcrypto session copy'

/**
 * Counts every object on the token labelled `label` (token and session objects, private ones
 * included, as the login the process holds shows them), but the signing sessions' copies of keys
 * (which go with their sessions); call it after the library opened the token.
 */
export function objectCounter(library, label) {
  const { native, slot } = load(library, label)
  return () => {
    const session = native.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION)
    try {
      native.C_FindObjectsInit(session, [])
      const found = []
      for (let batch; (batch = native.C_FindObjects(session, 100)).length > 0;) found.push(...batch)
      native.C_FindObjectsFinal(session)
      return found.filter((handle) => native.C_GetAttributeValue(session, handle, [{ type: pkcs11js.CKA_LABEL }])[0].value?.toString() !== COPY_LABEL).length
    } finally {
      native.C_CloseSession(session)
    }
  }
}
