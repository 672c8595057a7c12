/**
 * Exit codes and one-line error reports of `pkcs11-jwt`.
 *
 * 0 done; 1 the operation or verification failed; 2 bad usage or configuration. Every error is one
 * line on stderr that names the cause (the CKR_ name for a token error) and never contains a PIN.
 */
import { redact } from '../index.js'
import { ConfigurationError, KeyNotFoundError, ModuleLoadError, Pkcs11WebCryptoError, TokenError, TokenNotFoundError } from '../index.js'

export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

/** An error of the CLI itself, with the exit code it stands for. */
export class CliError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options)
    this.exitCode = exitCode
    this.name = new.target.name
  }
}

/** Bad usage: wrong or conflicting options, unreadable input. Exit 2. */
export class UsageError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT_USAGE, options)
  }
}

/** The operation ran and failed, e.g. a token that does not verify. Exit 1. */
export class FailureError extends CliError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, EXIT_FAILED, options)
  }
}

const secrets = new Set<string>()

/** Remembers a value (a PIN) that must never appear in any output. */
export function rememberSecret(value: string | undefined): void {
  if (value) secrets.add(value)
}

/**
 * `text` on one line, through the library's one PIN redaction (a PIN in a URI, however mistyped),
 * with every remembered secret (--pin, a PIN file's content, PKCS11_PIN) masked too.
 */
export function scrub(text: string): string {
  let result = redact(text.replace(/\s*[\r\n]+\s*/g, ' ').trim())
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) result = result.split(secret).join('****')
  return result
}

/** The token error behind `error`, looking through `cause` (a DOMException OperationError carries one). */
function tokenErrorIn(error: unknown): TokenError | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth++) {
    if (current instanceof TokenError) return current
  }
  return undefined
}

const PIN_HINTS: Record<string, string> = {
  CKR_PIN_INCORRECT: 'wrong PIN',
  CKR_PIN_LOCKED: 'the PIN is locked',
  CKR_PIN_LEN_RANGE: 'the PIN has the wrong length',
  CKR_USER_PIN_NOT_INITIALIZED: 'the token has no user PIN yet',
}

/** The one-line message and exit code for `error`. */
export function describeError(error: unknown): { message: string; exitCode: number } {
  const token = tokenErrorIn(error)
  let message: string
  let exitCode = EXIT_FAILED
  if (error instanceof CliError) {
    message = error.message
    exitCode = error.exitCode
    if (token && !message.includes(token.code)) message += ` (${token.code})`
  } else if (error instanceof ConfigurationError || error instanceof ModuleLoadError || error instanceof TokenNotFoundError) {
    message = error.message
    exitCode = EXIT_USAGE
  } else if (error instanceof KeyNotFoundError) {
    message = error.message
  } else if (error instanceof TokenError) {
    const hint = PIN_HINTS[error.code]
    message = hint ? `${error.message} (${hint})` : error.message
  } else if (error instanceof Pkcs11WebCryptoError) {
    message = `${error.message} (${error.code})`
  } else if (error instanceof Error) {
    message = error.name && error.name !== 'Error' ? `${error.name}: ${error.message}` : error.message
    if (token && !message.includes(token.code)) message += ` (${token.function} failed: ${token.code})`
  } else {
    message = String(error)
  }
  return { message: scrub(message || 'unknown error'), exitCode }
}
