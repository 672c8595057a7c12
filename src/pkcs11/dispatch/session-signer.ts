/**
 * One session that signs and verifies with synchronous PKCS#11 calls: the body of a signing
 * worker. It opens its session when first needed and drops it when it can no longer be trusted.
 */
import pkcs11js from 'pkcs11js'
import { returnValueOf } from '../binding.js'
import { HANDLE_GONE, INPUT_REJECTIONS, INPUT_STEPS, SESSION_LOST as SESSION_LOST_NAMES } from '../failures.js'
import { bytes } from './bytes.js'
import { FIRST_STEP, runKeyOperation } from './key-operations.js'
import type { KeyOperation, Operation } from './protocol.js'
import type { SessionCopies } from './session-copies.js'

const C = pkcs11js as unknown as Record<string, number>
/** After these the session is gone: open a new one. */
const SESSION_LOST = new Set(SESSION_LOST_NAMES.map((name) => C[name]))
/** A refused input ends the operation (PKCS#11 says so for every code but CKR_BUFFER_TOO_SMALL): the session stays. */
const INPUT_REJECTED = new Set(INPUT_REJECTIONS.map((name) => C[name]))
/** A key's copy answered these: it is gone (the session lost it, say), not the key. */
const COPY_GONE = new Set(HANDLE_GONE.map((name) => C[name]))

/** A failed call: the function, and its CK_RV when PKCS#11 answered one. */
export class SignerFailure {
  constructor(
    readonly fn: string,
    readonly code: number | undefined,
    readonly message: string,
  ) {}
}

export class SessionSigner {
  readonly #native: pkcs11js.PKCS11
  #slot: Uint8Array
  #session: Buffer | undefined
  readonly #copies: SessionCopies | undefined

  /**
   * `native` must be a load of the module that is initialized and logged in (by the main thread);
   * with `copies`, signatures use session copies of their keys (see session-copies.ts).
   */
  constructor(native: pkcs11js.PKCS11, slot: Uint8Array, copies?: SessionCopies) {
    this.#native = native
    this.#slot = slot
    this.#copies = copies
  }

  /** Sessions held now: 0 or 1. */
  get sessions(): number {
    return this.#session ? 1 : 0
  }

  /**
   * The token is in `slot` now: the next request opens a session there. The old session went with
   * the token, and is forgotten, not closed: if the module was initialized again, its handle may
   * name another thread's new session.
   */
  retarget(slot: Uint8Array): void {
    this.#session = undefined
    this.#copies?.forget()
    this.#slot = slot
  }

  close(): void {
    if (!this.#session) return
    try {
      this.#native.C_CloseSession(this.#session)
    } catch {
      // already gone with the device
    }
    this.#session = undefined
    this.#copies?.forget()
  }

  /** Signs `data` into `out`; returns the signature's length. Throws a SignerFailure. */
  sign(mechanism: pkcs11js.Mechanism, key: Buffer, data: Uint8Array, out: Buffer, keyPin: string | undefined): number {
    return this.#operation('C_SignInit', (native, session, step) => {
      // A key that asks for its own PIN at each use is not copied: its login is the call's.
      const copies = keyPin === undefined ? this.#copies : undefined
      const copy = copies?.copyOf(native, session, key)
      try {
        native.C_SignInit(session, mechanism, copy ?? key)
      } catch (error) {
        if (!copies || !copy || !COPY_GONE.has(returnValueOf(error) ?? 0)) throw error
        copies.drop(key)
        native.C_SignInit(session, mechanism, key)
      }
      if (keyPin !== undefined) {
        step('C_Login')
        native.C_Login(session, C.CKU_CONTEXT_SPECIFIC, keyPin)
      }
      step('C_Sign')
      return native.C_Sign(session, bytes(data), out).length
    })
  }

  /** True when `signature` is `key`'s on `data`; false when it is not. Throws a SignerFailure. */
  verify(mechanism: pkcs11js.Mechanism, key: Buffer, data: Uint8Array, signature: Uint8Array): boolean {
    // No signature is empty: answer without asking the token (which would refuse the empty buffer).
    if (signature.byteLength === 0) return false
    return this.#operation('C_VerifyInit', (native, session, step) => {
      native.C_VerifyInit(session, mechanism, key)
      step('C_Verify')
      try {
        return native.C_Verify(session, bytes(data), bytes(signature))
      } catch (error) {
        const code = returnValueOf(error)
        if (code === C.CKR_SIGNATURE_INVALID || code === C.CKR_SIGNATURE_LEN_RANGE) return false
        throw error
      }
    })
  }

  /**
   * Runs `op` with `key` on `data`: `last` is the signature to check (verify; returns 1 or 0), else
   * the room for the result (returns its length). Throws a SignerFailure.
   */
  run(op: Operation['op'], mechanism: pkcs11js.Mechanism, key: Buffer, data: Uint8Array, last: Buffer, keyPin: string | undefined): number {
    if (op === 'verify') return Number(this.verify(mechanism, key, data, last))
    if (op === 'sign') return this.sign(mechanism, key, data, last, keyPin)
    return this.keyOperation(op, mechanism, key, data, last, keyPin)
  }

  /** Runs a decrypt, encrypt, derive, unwrap or wrap with `key` into `out`; returns the result's length. Throws a SignerFailure. */
  keyOperation(op: KeyOperation['op'], mechanism: pkcs11js.Mechanism, key: Buffer, data: Uint8Array, out: Buffer, keyPin: string | undefined): number {
    return this.#operation(FIRST_STEP[op], (native, session, step) => runKeyOperation(native, session, op, mechanism, key, data, out, keyPin, step))
  }

  /**
   * Runs `calls` on the session, opened if need be. `calls` names each function after the *Init
   * with `step`, for the failure; once past the *Init, a failure may have left the operation active
   * (SoftHSM does, for one), so the session is dropped; not after an input the token refused at the
   * step that reads it (the operation ended there), so a stream of bad ciphertexts costs no session.
   * A session that still has an operation active (a token that did not end one) is replaced once.
   */
  #operation<T>(init: string, calls: (native: pkcs11js.PKCS11, session: Buffer, step: (fn: string) => void) => T): T {
    let fn = 'C_OpenSession'
    let begun = false
    for (let tries = 0; ; tries++) {
      try {
        this.#session ??= this.#native.C_OpenSession(Buffer.from(this.#slot), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION)
        fn = init
        return calls(this.#native, this.#session, (next) => {
          fn = next
          begun = true
        })
      } catch (error) {
        const code = returnValueOf(error)
        const { message } = error as { message?: string }
        const refusedInput = code !== undefined && INPUT_STEPS.includes(fn) && INPUT_REJECTED.has(code)
        if ((begun && !refusedInput) || (code !== undefined && SESSION_LOST.has(code))) this.close()
        if (!begun && code === C.CKR_OPERATION_ACTIVE && tries === 0) {
          this.close()
          continue
        }
        throw new SignerFailure(fn, code || undefined, String(message ?? error))
      }
    }
  }
}
