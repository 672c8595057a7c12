/**
 * What a PKCS#11 failure means for the library: which ones a fresh session, a new login or a
 * reconnection can cure, and so which calls are worth one more try.
 */
import { TokenError } from '../errors.js'

export type Remedy =
  /** The session is gone (the worker or pool already dropped it): just try again. */
  | 'new-session'
  /** The login state was lost: log in again, then try again. */
  | 'login'
  /** The token is gone or unwell: wait until it answers again (handles may have changed). */
  | 'reconnect'
  /** The key's handle means nothing now: look the key up again by its attributes. */
  | 'refind'

/** After these the object handle means nothing now (a key's session copy may be what went). */
export const HANDLE_GONE = ['CKR_OBJECT_HANDLE_INVALID', 'CKR_KEY_HANDLE_INVALID']

const REMEDIES: Record<string, Remedy> = {
  CKR_SESSION_HANDLE_INVALID: 'new-session',
  CKR_SESSION_CLOSED: 'new-session',
  CKR_FUNCTION_FAILED: 'new-session',
  CKR_USER_NOT_LOGGED_IN: 'login',
  CKR_DEVICE_REMOVED: 'reconnect',
  CKR_DEVICE_ERROR: 'reconnect',
  CKR_TOKEN_NOT_PRESENT: 'reconnect',
  CKR_TOKEN_NOT_RECOGNIZED: 'reconnect',
  CKR_GENERAL_ERROR: 'reconnect',
  CKR_CRYPTOKI_NOT_INITIALIZED: 'reconnect',
  ...Object.fromEntries(HANDLE_GONE.map((name) => [name, 'refind'])),
}

/** After these a session is gone (or its device is): it is closed, never handed to another caller. */
export const SESSION_LOST = ['CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED', 'CKR_DEVICE_REMOVED', 'CKR_DEVICE_ERROR', 'CKR_TOKEN_NOT_PRESENT']

/**
 * The steps whose failure may be the input's fault: the ciphertext, the wrapped key or the peer's
 * point, which whoever sends us a JWE controls. Their *Init (and every other call) still says
 * whether the device is well.
 */
export const INPUT_STEPS = ['C_Decrypt', 'C_DeriveKey', 'C_UnwrapKey']

/**
 * What tokens answer there for an input they refuse: SoftHSM 2.6.1 answers CKR_GENERAL_ERROR to a
 * bad OAEP block, GCM tag, KW integrity check, off-curve or small-order point; later SoftHSM and
 * other devices the more precise codes; YubiKeys CKR_FUNCTION_FAILED.
 */
export const INPUT_REJECTIONS = [
  'CKR_GENERAL_ERROR',
  'CKR_FUNCTION_FAILED',
  'CKR_ARGUMENTS_BAD',
  'CKR_DATA_INVALID',
  'CKR_DATA_LEN_RANGE',
  'CKR_ENCRYPTED_DATA_INVALID',
  'CKR_ENCRYPTED_DATA_LEN_RANGE',
  'CKR_WRAPPED_KEY_INVALID',
  'CKR_WRAPPED_KEY_LEN_RANGE',
  'CKR_DOMAIN_PARAMS_INVALID',
  'CKR_MECHANISM_PARAM_INVALID',
  'CKR_KEY_SIZE_RANGE',
  'CKR_TEMPLATE_INCONSISTENT',
]

/**
 * True when `error` is the token refusing an input at a step that reads it: final (trying again
 * fails the same way), and no sign of an unwell device, whatever its code says elsewhere.
 */
export function rejectsInput(error: unknown): boolean {
  return error instanceof TokenError && INPUT_STEPS.includes(error.function) && INPUT_REJECTIONS.includes(error.code)
}

/** The remedy for `error`, or undefined when trying again would fail the same way (a bad input, a wrong PIN). */
export function remedyFor(error: unknown): Remedy | undefined {
  return error instanceof TokenError ? REMEDIES[error.code] : undefined
}

/** Waits between reconnection attempts: 50 ms, doubling, at most 2 s. */
export function backoff(attempt: number): number {
  return Math.min(2000, 50 * 2 ** attempt)
}
