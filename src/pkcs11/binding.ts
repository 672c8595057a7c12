/**
 * The native binding (pkcs11js) and the only place that translates its errors: the main thread calls
 * PKCS#11 through `callSync` / `callAsync`, and the signing sessions read a failure's CK_RV with
 * `returnValueOf`, so every failure is a TokenError that names its CKR_ code.
 */
import { randomFillSync } from 'node:crypto'
import pkcs11js from 'pkcs11js'
import { TokenError, type CkrName } from '../errors.js'

export type Handle = Buffer
export type Mechanism = pkcs11js.Mechanism
export type Template = pkcs11js.Template
export type PKCS11 = pkcs11js.PKCS11
export const { PKCS11: NativeModule } = pkcs11js

/** PKCS#11 constants, plus the 3.0 ones pkcs11js does not export. */
const pkcs11v3 = {
  CKK_EC_EDWARDS: 0x40,
  CKK_EC_MONTGOMERY: 0x41,
  CKM_EC_EDWARDS_KEY_PAIR_GEN: 0x1055,
  CKM_EC_MONTGOMERY_KEY_PAIR_GEN: 0x1056,
  CKM_EDDSA: 0x1057,
  /** CK_RSA_PKCS_OAEP_PARAMS.source: the label is in pSourceData (pkcs11js lacks the constant). */
  CKZ_DATA_SPECIFIED: 1,
} as const
export const C: typeof pkcs11js & typeof pkcs11v3 = { ...pkcs11js, ...pkcs11v3 }

const isCkrName = (name: string): name is CkrName => name.startsWith('CKR_')
const ckrNames = new Map<number, CkrName>()
for (const [name, value] of Object.entries(pkcs11js)) {
  if (isCkrName(name) && typeof value === 'number' && !ckrNames.has(value)) ckrNames.set(value, name)
}

/** The CKR_ name of a return value, e.g. 0xa0 -> 'CKR_PIN_INCORRECT'. */
export function ckrName(value: number): CkrName {
  return ckrNames.get(value) ?? `CKR_0x${value.toString(16).padStart(8, '0')}`
}

/**
 * A CKR_ failure as the native addon throws it where pkcs11js does not wrap it (C_CreateObject,
 * C_SetAttributeValue, C_CopyObject, C_FindObjects): a plain Error whose message is "CKR_X:n".
 */
const NATIVE_FAILURE = /^CKR_\w+:(\d+)/

/** The CK_RV that pkcs11js threw `error` for (wrapped or not), or undefined for anything else (a TypeError of the binding). */
export function returnValueOf(error: unknown): number | undefined {
  if (error instanceof pkcs11js.Pkcs11Error) return (error as { code?: number }).code ?? 0
  const unwrapped = error instanceof Error && !(error instanceof TypeError) ? NATIVE_FAILURE.exec(error.message) : null
  return unwrapped ? Number(unwrapped[1]) : undefined
}

/** `error` as a TokenError of `fn` when pkcs11js threw it for a CKR_ code; anything else unchanged. */
function toTokenError(error: unknown, fn: string): unknown {
  const code = returnValueOf(error)
  return code === undefined ? error : new TokenError(ckrName(code), code, fn)
}

/** A synchronous call `fn` on the main thread failed: its error as toTokenError makes it, the OpenSSL error queue emptied. */
export function syncCallFailure(error: unknown, fn: string): unknown {
  clearOpenSslErrors()
  return toTokenError(error, fn)
}

/**
 * `template`, once it is known to be one pkcs11js takes. pkcs11js 2.1.7 frees the attribute array it
 * mallocs, uninitialized, when it refuses an element: a heap corruption ("double free or corruption",
 * seen in 1 of 6 runs), not a TypeError. So what it would refuse is refused here, before it sees it:
 * an element that is not { type: number, value?: number | boolean | string | Buffer | null }, and
 * dates (CKA_START_DATE / CKA_END_DATE), which it mis-reads.
 *
 * @example
 * callSync('C_CreateObject', () => native.C_CreateObject(session, sendable(template)))
 */
export function sendable(template: Template): Template {
  if (!Array.isArray(template)) throw new TypeError('a PKCS#11 template is an array of attributes')
  for (const attribute of template as unknown[]) {
    if (typeof attribute !== 'object' || attribute === null) throw new TypeError('a PKCS#11 attribute is an object { type, value }')
    const { type, value } = attribute as { type: unknown; value: unknown }
    if (typeof type !== 'number' || !Number.isInteger(type) || type < 0 || type > 0xffffffff) throw new TypeError('a PKCS#11 attribute type is a CKA_ number')
    if (type === pkcs11js.CKA_START_DATE || type === pkcs11js.CKA_END_DATE) throw new TypeError('PKCS#11 date attributes are not sent')
    const sendableValue = value == null || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'string' || Buffer.isBuffer(value)
    if (!sendableValue) throw new TypeError(`the value of attribute 0x${type.toString(16)} is not a number, boolean, string or Buffer`)
  }
  return template
}

/** Runs a synchronous PKCS#11 call (on the main thread), translating a CKR_ failure. */
export function callSync<T>(fn: string, run: () => T): T {
  try {
    return run()
  } catch (error) {
    throw syncCallFailure(error, fn)
  }
}

const scratch = new Uint8Array(1)

/**
 * Empties this thread's OpenSSL error queue, after a failed call on the main thread. A module built
 * on OpenSSL (SoftHSM) binds to the OpenSSL that node exports, so what a failed call leaves on the
 * main thread's queue, Node's WebCrypto finds in its next job, and aborts the process ("Assertion
 * failed: errors->Empty()"; seen after a refused RSA-OAEP decrypt, then any AES-GCM decrypt). A
 * synchronous crypto job of Node's returns with the queue empty.
 */
export function clearOpenSslErrors(): void {
  randomFillSync(scratch)
}

/**
 * Buffers that a thread-pool call is reading or writing. pkcs11js hands the worker thread raw
 * pointers without holding the buffers, so they must stay reachable until the call completes, or
 * the garbage collector may free them under the token's feet (seen: SIGSEGV under load).
 */
const inFlight = new Set<Buffer>()

/** Awaits an asynchronous (thread-pool) PKCS#11 call on `buffers`, translating a CKR_ failure. */
export async function callAsync<T>(fn: string, buffers: Buffer[], run: () => Promise<T>): Promise<T> {
  for (const buffer of buffers) inFlight.add(buffer)
  try {
    return await run()
  } catch (error) {
    throw toTokenError(error, fn)
  } finally {
    for (const buffer of buffers) inFlight.delete(buffer)
  }
}

/** A call that failed in a signing session: a TokenError when PKCS#11 answered a CK_RV, else an Error with its message. */
export function callFailure(fn: string, code: number | undefined, message: string): Error {
  return code === undefined ? new Error(`${fn} failed: ${message}`) : new TokenError(ckrName(code), code, fn)
}

/** True when `error` is a TokenError with one of `codes`. */
export function isTokenError(error: unknown, ...codes: string[]): error is TokenError {
  return error instanceof TokenError && codes.includes(error.code)
}
