// Another PKCS#11 user of the same module in this process (as node-webcrypto-p11 or graphene would
// be): its own pkcs11js load of the library, which shares the module's state (login, sessions,
// C_Initialize) with the library under test, as PKCS#11 says every load in one process does.
import pkcs11js from 'pkcs11js'
import { COPY_LABEL } from '../../dist/pkcs11/dispatch/session-copies.js'

export { COPY_LABEL }

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

/**
 * Runs `use` on a new read-write session of the token labelled `label`, through a separate load of
 * `library` (which initializes the module if nothing else holds it), and closes the session.
 */
export function withOtherSession<T>(library: string, label: string, use: (native: pkcs11js.PKCS11, session: Buffer) => T): T {
  const { native, slot } = load(library, label)
  const session = native.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  try {
    return use(native, session)
  } finally {
    native.C_CloseSession(session)
  }
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
      return countObjects(native, session, []) - countObjects(native, session, [{ type: pkcs11js.CKA_LABEL, value: COPY_LABEL }])
    } finally {
      native.C_CloseSession(session)
    }
  }
}

/** The handles of the objects the session finds that match `template`, as hex strings. */
export function findObjects(native: pkcs11js.PKCS11, session: Buffer, template: pkcs11js.Template): string[] {
  native.C_FindObjectsInit(session, template)
  const handles: string[] = []
  for (let batch; (batch = native.C_FindObjects(session, 100)).length > 0;) handles.push(...batch.map((handle) => handle.toString('hex')))
  native.C_FindObjectsFinal(session)
  return handles
}

/** How many objects the session finds that match `template`. */
export function countObjects(native: pkcs11js.PKCS11, session: Buffer, template: pkcs11js.Template): number {
  return findObjects(native, session, template).length
}
