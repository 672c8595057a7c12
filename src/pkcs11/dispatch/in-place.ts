/**
 * One signature made on the main thread, synchronously, on a session of its own. With one call in
 * flight (a login, one ID token) a signing worker costs two thread hand-overs a call, and waking a
 * sleeping thread on a VM's idle core costs more than a fast token's signature: in place, the call
 * costs what the token takes. The pool sends a signature here only when the device is fast (its
 * kind measured at 2 ms or less), with a small input, and with nothing else under way (or beside
 * busy workers, see WorkerPool); calls in place back to back hold the event loop 1 ms (and one call) at most. A slow or remote token is never
 * called here (see WorkerPool), nor an operation on input an attacker chooses (a decrypt, a derive,
 * a verify): its refusals are the module's errors, left in the main thread's OpenSSL error queue,
 * where Node's next WebCrypto job aborts the process on them. A failure here empties the queue
 * (clearOpenSslErrors), but a signature's failure is the device's, not one an attacker can make at will.
 */
import { performance } from 'node:perf_hooks'
import { callFailure, clearOpenSslErrors, type PKCS11 } from '../binding.js'
import { bytes } from './bytes.js'
import type { Pending } from './pending.js'
import { SessionCopies } from './session-copies.js'
import { SessionSigner, SignerFailure } from './session-signer.js'

/** Inputs above this go to a worker whatever their kind's time: the token reads them all. */
export const IN_PLACE_MAX_INPUT = 64 * 1024

export class InPlaceRunner {
  readonly #signer: SessionSigner

  /**
   * `native` is the main thread's load of the module, initialized and logged in; `keyCopies`,
   * when signatures use session copies of their keys (see session-copies.ts).
   */
  constructor(native: PKCS11, slot: Uint8Array, keyCopies: Int32Array | undefined) {
    this.#signer = new SessionSigner(native, slot, keyCopies && new SessionCopies(keyCopies, clearOpenSslErrors))
  }

  /** Sessions held now: 0 or 1. */
  get sessions(): number {
    return this.#signer.sessions
  }

  /** Makes the signature `pending` asks for and answers it; returns the ms the token took. */
  run(pending: Pending): number {
    const { operation, key } = pending
    if (operation.op !== 'sign') throw new TypeError('only signatures are made in place')
    const signature = Buffer.alloc(operation.outputLength)
    const start = performance.now()
    try {
      const length = this.#signer.sign(operation.mechanism, bytes(key), operation.data, signature, operation.keyPin)
      pending.answer(signature.subarray(0, length))
    } catch (failure) {
      clearOpenSslErrors()
      // Anything else is a bug here: it is the caller's error, not the event loop's (it would end the process).
      pending.answer(failure instanceof SignerFailure ? callFailure(failure.fn, failure.code, failure.message) : (failure as Error))
    }
    return performance.now() - start
  }

  /** The token is in `slot` now (it came back, or the module was initialized again). */
  retarget(slot: Uint8Array): void {
    this.#signer.retarget(slot)
  }

  close(): void {
    this.#signer.close()
  }
}
