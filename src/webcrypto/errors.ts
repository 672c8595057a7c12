/** The DOMException kinds that the WebCrypto specification throws. */

export function notSupported(message: string): DOMException {
  return new DOMException(message, 'NotSupportedError')
}

export function invalidAccess(message: string): DOMException {
  return new DOMException(message, 'InvalidAccessError')
}

export function dataError(message: string): DOMException {
  return new DOMException(message, 'DataError')
}

/** A failure of the operation itself; `cause` keeps the token's error (and its CKR_ code). */
export function operationError(cause: unknown): DOMException {
  const reason = cause instanceof Error ? cause.message : String(cause)
  const error = new DOMException(`the token could not complete the operation: ${reason}`, 'OperationError')
  return Object.defineProperty(error, 'cause', { value: cause, configurable: true, writable: true })
}

const SPEC_NAMES = new Set([
  'NotSupportedError',
  'InvalidAccessError',
  'DataError',
  'OperationError',
  'SyntaxError',
  'QuotaExceededError',
  'AbortError',
  'InvalidStateError',
  'NotAllowedError',
  'TimeoutError',
])

/**
 * `error` as the WebCrypto specification names it: TypeErrors and the spec's DOMExceptions pass;
 * Node 20's misspelt 'InvalidAccessException' is renamed; anything else (a token failure) becomes
 * an OperationError whose cause it is.
 */
export function asSpecError(error: unknown): unknown {
  if (error instanceof TypeError) return error
  if (error instanceof DOMException) {
    if (SPEC_NAMES.has(error.name)) return error
    if (error.name === 'InvalidAccessException') return invalidAccess(error.message)
  }
  return operationError(error)
}

/**
 * A token key given to Node's own WebCrypto, which cannot use it (code ERR_PKCS11_TOKEN_KEY_TO_NODE).
 * A TypeError named so, as WebCrypto answers a key it does not know (and as Node names its own).
 *
 * @example
 * await webcrypto.subtle.sign('Ed25519', tokenKey, data) // rejects: use hsm.subtle, or hsm.installGlobal()
 */
export class TokenKeyToNodeError extends TypeError {
  readonly code = 'ERR_PKCS11_TOKEN_KEY_TO_NODE'
  constructor(method: string) {
    super(
      `Node's own SubtleCrypto.${method}() was given a key held by a PKCS#11 token, which Node cannot use: ` +
        `call hsm.subtle.${method}(), or hsm.installGlobal() before the code takes globalThis.crypto ` +
        "(a crypto.subtle kept from before installGlobal() is still Node's)",
    )
  }
}
