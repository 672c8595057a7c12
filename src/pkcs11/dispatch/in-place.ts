/**
 * One request run on the main thread, synchronously, on a session of its own. With one call in
 * flight (a login, one ID token) a signing worker costs two thread hand-overs a call, and waking a
 * sleeping thread on a VM's idle core costs more than a fast token's signature: in place, the call
 * costs what the token takes. The pool sends a request here only when the device is fast (its
 * kind measured at most `inPlaceMs`), nothing else is under way and the input is small, so the
 * event loop is held no longer than the token's measured time; a slow, stalling or remote token
 * is never called here (see WorkerPool).
 */
import { performance } from 'node:perf_hooks'
import { callFailure, type PKCS11 } from '../binding.js'
import { bytes } from './bytes.js'
import { entryOf, withCallParameter } from './call-parameter.js'
import type { Pending } from './pending.js'
import { SessionSigner, SignerFailure } from './session-signer.js'

/** Inputs above this go to a worker whatever their kind's time: the token reads them all. */
export const IN_PLACE_MAX_INPUT = 64 * 1024

export class InPlaceRunner {
  readonly #signer: SessionSigner

  /** `native` is the main thread's load of the module, initialized and logged in. */
  constructor(native: PKCS11, slot: Uint8Array) {
    this.#signer = new SessionSigner(native, slot)
  }

  /** Sessions held now: 0 or 1. */
  get sessions(): number {
    return this.#signer.sessions
  }

  /** Runs `pending` and answers it; returns the ms the token took. */
  run(pending: Pending): number {
    const { operation, key } = pending
    const entry = entryOf(operation.mechanism, operation.parameter)
    const mechanism = withCallParameter(entry, operation.parameter?.map(([, value]) => value) ?? [])
    const last = operation.op === 'verify' ? bytes(operation.signature) : Buffer.alloc(operation.outputLength)
    const start = performance.now()
    try {
      const value = this.#signer.run(operation.op, mechanism, bytes(key), operation.data, last, operation.op === 'verify' ? undefined : operation.keyPin)
      pending.answer(operation.op === 'verify' ? value === 1 : last.subarray(0, value))
    } catch (failure) {
      if (!(failure instanceof SignerFailure)) throw failure
      pending.answer(callFailure(failure.fn, failure.code, failure.message))
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
