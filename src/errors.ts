/**
 * Errors of this library that are not WebCrypto's own. Every class has a stable `code` to branch on;
 * no message ever contains a PIN: each goes through the one redaction (src/lib/redact.ts), and so
 * do the messages of its causes.
 */
import { redact, redactError } from './lib/redact.js'

/** The name of a PKCS#11 return value, e.g. 'CKR_PIN_INCORRECT' (unknown values: 'CKR_0x80000001'). */
export type CkrName = `CKR_${string}`

/**
 * Every `code` an error of this library has: the CKR_ name of a TokenError, else one per class.
 *
 * @example
 * function retryable(code: ErrorCode) { return code === 'ERR_PKCS11_TIMEOUT' || code === 'CKR_DEVICE_REMOVED' }
 */
export type ErrorCode =
  | CkrName
  | 'ERR_PKCS11_TIMEOUT'
  | 'ERR_PKCS11_QUEUE_FULL'
  | 'ERR_PKCS11_CONFIG'
  | 'ERR_PKCS11_MODULE'
  | 'ERR_PKCS11_TOKEN_NOT_FOUND'
  | 'ERR_PKCS11_KEY_NOT_FOUND'
  | 'ERR_PKCS11_KEY_EXISTS'
  | 'ERR_PKCS11_KEY_PIN_REQUIRED'
  | 'ERR_PKCS11_INPUT_REJECTED'
  | 'ERR_PKCS11_CLOSED'

/** Base class: `code` names the cause. Its message, and its cause's, are redacted before anything can show them. */
export class Pkcs11WebCryptoError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    redactError(options?.cause)
    super(redact(message), options)
    this.code = code
    this.name = new.target.name
  }
}

/**
 * A PKCS#11 function returned an error. `code` is its CKR_ name, `returnValue` its number.
 *
 * @example
 * try { await hsm.subtle.sign('ECDSA', key, data) }
 * catch (e) { if (e instanceof TokenError && e.code === 'CKR_DEVICE_REMOVED') reconnect() }
 */
export class TokenError extends Pkcs11WebCryptoError {
  declare readonly code: CkrName
  readonly returnValue: number
  readonly function: string
  constructor(code: CkrName, returnValue: number, fn: string, detail?: string) {
    super(code, `${fn} failed: ${code}${detail ? ` (${detail})` : ''}`)
    this.returnValue = returnValue
    this.function = fn
  }
}

/**
 * A call waited longer than its deadline (the `timeout` option, or an aborted signal's reason
 * when one is given), in the queue for a session or for the token to come back.
 */
export class TimeoutError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_TIMEOUT'
  constructor(ms: number) {
    super('ERR_PKCS11_TIMEOUT', `no answer from the token within ${ms} ms`)
  }
}

/** More calls wait for the token than the queue holds (the `maxQueue` option): shed load. */
export class QueueFullError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_QUEUE_FULL'
  constructor(size: number) {
    super('ERR_PKCS11_QUEUE_FULL', `${size} calls are already waiting for the token`)
  }
}

/** The options do not say which module, token or PIN to use, or say it wrongly. */
export class ConfigurationError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_CONFIG'
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PKCS11_CONFIG', message, options)
  }
}

/** The PKCS#11 module could not be loaded or initialized. */
export class ModuleLoadError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_MODULE'
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_PKCS11_MODULE', message, options)
  }
}

/** No token matches the selection. */
export class TokenNotFoundError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_TOKEN_NOT_FOUND'
  constructor(message: string) {
    super('ERR_PKCS11_TOKEN_NOT_FOUND', message)
  }
}

/** No key on the token matches the selector. */
export class KeyNotFoundError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_KEY_NOT_FOUND'
  constructor(message: string) {
    super('ERR_PKCS11_KEY_NOT_FOUND', message)
  }
}

/**
 * A new key would take an id or label another object on the token already has (a second key of
 * that id or label makes every later lookup by it ambiguous). Pass `unique: false` to add it anyway.
 */
export class KeyExistsError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_KEY_EXISTS'
  constructor(identity: string, token: string) {
    super('ERR_PKCS11_KEY_EXISTS', `token "${token}" already holds an object with ${identity}; choose another, or pass unique: false to add a key beside it`)
  }
}

/**
 * The key has CKA_ALWAYS_AUTHENTICATE and no key PIN was given: pass `keyPin` to `keys.get`, or as
 * a member of the sign call's algorithm.
 */
export class KeyPinRequiredError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_KEY_PIN_REQUIRED'
  constructor() {
    super('ERR_PKCS11_KEY_PIN_REQUIRED', 'the key needs its own PIN for every use (CKA_ALWAYS_AUTHENTICATE): give keyPin')
  }
}

/**
 * The token refused an input at the step that reads it: a ciphertext, tag or wrapped key that does
 * not decrypt, a peer's point that is not on the curve. Final (never tried again, no reconnection),
 * and the same message whatever the token's code was, so that nobody learns which check failed.
 */
export class InputRejectedError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_INPUT_REJECTED'
  constructor() {
    super('ERR_PKCS11_INPUT_REJECTED', 'the token rejected the input')
  }
}

/** The instance was closed; open a new one. */
export class ClosedError extends Pkcs11WebCryptoError {
  declare readonly code: 'ERR_PKCS11_CLOSED'
  constructor() {
    super('ERR_PKCS11_CLOSED', 'this Pkcs11Crypto was closed')
  }
}
