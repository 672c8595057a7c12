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
