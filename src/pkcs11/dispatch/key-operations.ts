/**
 * The PKCS#11 calls of the operations that make bytes with a key (decrypt, encrypt, derive, unwrap,
 * wrap), shared by the signing workers and the thread-pool fallback. A derived or unwrapped secret
 * lives only as long as it is read: a session object, destroyed on every path (and with the
 * session, should even its C_DestroyObject fail).
 */
import pkcs11js from 'pkcs11js'
import { bytes } from './bytes.js'
import type { KeyOperation } from './protocol.js'

const C = pkcs11js

/** What C_DeriveKey and C_UnwrapKey make: a readable session secret (no CKA_VALUE_LEN: with it SoftHSM keeps Z's LAST bytes). */
const TRANSIENT_SECRET: pkcs11js.Template = [
  { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
  { type: C.CKA_KEY_TYPE, value: C.CKK_GENERIC_SECRET },
  { type: C.CKA_TOKEN, value: false },
  { type: C.CKA_SENSITIVE, value: false },
  { type: C.CKA_EXTRACTABLE, value: true },
]

/** The first function each operation calls: a failure there is named after it. */
export const FIRST_STEP: Readonly<Record<KeyOperation['op'], string>> = {
  decrypt: 'C_DecryptInit',
  encrypt: 'C_EncryptInit',
  derive: 'C_DeriveKey',
  unwrap: 'C_UnwrapKey',
  wrap: 'C_CreateObject',
}

/**
 * Runs `op` with the key `key` on `session`, writing the result into `out`; returns its length.
 * `step` is told each function after the first, so that a failure names the call that failed.
 */
export function runKeyOperation(
  native: pkcs11js.PKCS11,
  session: Buffer,
  op: KeyOperation['op'],
  mechanism: pkcs11js.Mechanism,
  key: Buffer,
  data: Uint8Array,
  out: Buffer,
  keyPin: string | undefined,
  step: (fn: string) => void,
): number {
  const login = () => {
    if (keyPin === undefined) return
    step('C_Login')
    native.C_Login(session, C.CKU_CONTEXT_SPECIFIC, keyPin)
  }
  switch (op) {
    case 'decrypt':
      native.C_DecryptInit(session, mechanism, key)
      login()
      step('C_Decrypt')
      return native.C_Decrypt(session, bytes(data), out).length
    case 'encrypt':
      native.C_EncryptInit(session, mechanism, key)
      login()
      step('C_Encrypt')
      return native.C_Encrypt(session, bytes(data), out).length
    case 'derive':
      return readOnce(native, session, native.C_DeriveKey(session, mechanism, key, TRANSIENT_SECRET), out, step)
    case 'unwrap':
      return readOnce(native, session, native.C_UnwrapKey(session, mechanism, key, bytes(data), TRANSIENT_SECRET), out, step)
    case 'wrap': {
      const secret = native.C_CreateObject(session, [...TRANSIENT_SECRET, { type: C.CKA_VALUE, value: bytes(data) }])
      try {
        step('C_WrapKey')
        return native.C_WrapKey(session, mechanism, key, secret, out).length
      } finally {
        destroy(native, session, secret, step)
      }
    }
  }
}

/** Copies the secret's value into `out` and destroys it. */
function readOnce(native: pkcs11js.PKCS11, session: Buffer, secret: Buffer, out: Buffer, step: (fn: string) => void): number {
  try {
    step('C_GetAttributeValue')
    const [{ value }] = native.C_GetAttributeValue(session, secret, [{ type: C.CKA_VALUE }])
    const secretValue = value as Buffer
    if (secretValue.length > out.length) throw new Error(`the token made a ${secretValue.length}-byte secret where ${out.length} bytes were expected`)
    secretValue.copy(out)
    const length = secretValue.length
    secretValue.fill(0)
    return length
  } finally {
    destroy(native, session, secret, step)
  }
}

function destroy(native: pkcs11js.PKCS11, session: Buffer, secret: Buffer, step: (fn: string) => void): void {
  step('C_DestroyObject')
  native.C_DestroyObject(session, secret)
}
