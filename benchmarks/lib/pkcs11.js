// The raw binding, pkcs11js, as a peer would use it: one C_Initialize (with CKF_OS_LOCKING_OK, or
// SoftHSM does no locking of its own), the token found by label, login once, the key looked up once.
import { createHash } from 'node:crypto'
import pkcs11js from 'pkcs11js'

const CKM_EDDSA = pkcs11js.CKM_EDDSA ?? 0x1057

/** Signature mechanism per JOSE alg, and the bytes to hand to C_Sign for `data`. */
export const MECHANISMS = {
  RS256: { mechanism: { mechanism: pkcs11js.CKM_SHA256_RSA_PKCS }, input: (data) => data, length: 256 },
  PS256: {
    mechanism: {
      mechanism: pkcs11js.CKM_SHA256_RSA_PKCS_PSS,
      parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg: pkcs11js.CKM_SHA256, mgf: pkcs11js.CKG_MGF1_SHA256, saltLen: 32 },
    },
    input: (data) => data,
    length: 256,
  },
  // SoftHSM has raw CKM_ECDSA only: the SHA-256 is computed in software, as every peer must.
  ES256: { mechanism: { mechanism: pkcs11js.CKM_ECDSA }, input: (data) => createHash('sha256').update(data).digest(), length: 64 },
  EdDSA: { mechanism: { mechanism: CKM_EDDSA }, input: (data) => data, length: 64 },
}

/** Runs `call`; a PKCS#11 error with return value `code` is no error. */
function tolerating(code, call) {
  try {
    call()
  } catch (error) {
    if (error.code !== code) throw error
  }
}

/**
 * Opens the token `token.label` of `token.module`, logs in and finds the private key labelled
 * `keyLabel`; with `copy`, `key` is a session copy of it on the first session (CKA_TOKEN false, as
 * this library signs on a software slot), which goes with that session. `session()` opens (and
 * remembers) one more session. In a thread of a process whose module is initialized and logged in
 * already, it shares that (and must not `close()`).
 */
export function openRaw(token, keyLabel, { copy = false } = {}) {
  const p11 = new pkcs11js.PKCS11()
  p11.load(token.module)
  tolerating(pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED, () => p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }))
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === token.label)
  if (!slot) throw new Error(`token ${token.label} not found`)
  const sessions = []
  const session = () => {
    const handle = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
    sessions.push(handle)
    return handle
  }
  const first = session()
  tolerating(pkcs11js.CKR_USER_ALREADY_LOGGED_IN, () => p11.C_Login(first, pkcs11js.CKU_USER, token.pin))
  p11.C_FindObjectsInit(first, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }, { type: pkcs11js.CKA_LABEL, value: keyLabel }])
  const [key] = p11.C_FindObjects(first, 1)
  p11.C_FindObjectsFinal(first)
  if (!key) throw new Error(`private key ${keyLabel} not found`)
  const signingKey = copy ? p11.C_CopyObject(first, key, [{ type: pkcs11js.CKA_TOKEN, value: false }]) : key
  return {
    p11,
    key: signingKey,
    session,
    firstSession: first,
    close() {
      for (const handle of sessions) p11.C_CloseSession(handle)
      p11.C_Finalize()
      p11.close()
    },
  }
}
