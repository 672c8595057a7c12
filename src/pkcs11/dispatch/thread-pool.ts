/**
 * The fallback dispatch: sessions of the main thread's module instance, C_Sign on libuv's thread
 * pool. For modules whose every load is a separate instance (p11-kit-client.so: each load is its
 * own connection, with its own login and handles), where signing workers cannot share the login.
 */
import { ClosedError, QueueFullError, TimeoutError } from '../../errors.js'
import { C, callAsync, callSync, isTokenError, syncCallFailure, type Handle, type PKCS11 } from '../binding.js'
import { rejectsInput } from '../failures.js'
import type { ModuleActivity } from '../module-activity.js'
import { SessionPool } from '../session-pool.js'
import { bytes } from './bytes.js'
import { entryOf, withCallParameter } from './call-parameter.js'
import { FIRST_STEP, runKeyOperation } from './key-operations.js'
import type { Dispatcher, RunOptions } from './dispatcher.js'
import type { Operation } from './protocol.js'

export class ThreadPoolDispatcher implements Dispatcher {
  readonly #native: PKCS11
  readonly #pool: SessionPool
  readonly #maxQueue: number
  readonly #activity: ModuleActivity
  #closed = false

  /** `generation`: the module's initialization count now (see SessionPool); `activity`: who is inside the module. */
  constructor(native: PKCS11, slot: Handle, sessions: number, maxQueue: number, generation: () => number, activity: ModuleActivity) {
    this.#native = native
    this.#activity = activity
    this.#pool = new SessionPool(native, slot, sessions, generation)
    this.#maxQueue = maxQueue
  }

  get openSessions(): number {
    return this.#pool.openSessions
  }

  run(key: Handle, operation: Operation, options: RunOptions): Promise<Uint8Array | boolean> {
    if (this.#closed) return Promise.reject(new ClosedError())
    if (this.#pool.waiting >= this.#maxQueue) return Promise.reject(new QueueFullError(this.#pool.waiting))
    if (options.signal?.aborted) return Promise.reject(options.signal.reason)
    // Inside the module from the wait for a session on: a re-initialization waits for it, and a
    // call held back by one gets a session opened after it.
    const work = this.#activity.run(() => this.#pool.withSession((session, spoil) => this.#call(session, spoil, key, operation)))
    return withDeadline(work, options)
  }

  retarget(slot: Handle): void {
    this.#pool.reset(slot)
  }

  close(): Promise<void> {
    this.#closed = true
    return this.#pool.close()
  }

  async #call(session: Handle, spoil: () => void, key: Handle, operation: Operation): Promise<Uint8Array | boolean> {
    const native = this.#native
    const data = bytes(operation.data)
    try {
      if (operation.op !== 'sign' && operation.op !== 'verify') {
        // Synchronous here (decrypts and derives are rare beside signatures on such modules).
        const mechanism = withCallParameter(entryOf(operation.mechanism, operation.parameter), operation.parameter?.map(([, value]) => value) ?? [])
        const out = Buffer.alloc(operation.outputLength)
        let fn = FIRST_STEP[operation.op]
        try {
          return new Uint8Array(
            out.subarray(
              0,
              runKeyOperation(native, session, operation.op, mechanism, key, operation.data, out, operation.keyPin, (next) => {
                fn = next
              }),
            ),
          )
        } catch (error) {
          throw syncCallFailure(error, fn)
        }
      }
      if (operation.op === 'sign') {
        callSync('C_SignInit', () => native.C_SignInit(session, operation.mechanism, key))
        if (operation.keyPin !== undefined) callSync('C_Login', () => native.C_Login(session, C.CKU_CONTEXT_SPECIFIC, operation.keyPin))
        const signature = Buffer.alloc(operation.outputLength)
        return await callAsync('C_Sign', [data, signature], () => native.C_SignAsync(session, data, signature))
      }
      if (operation.signature.byteLength === 0) return false
      callSync('C_VerifyInit', () => native.C_VerifyInit(session, operation.mechanism, key))
      const signature = bytes(operation.signature)
      return await callAsync('C_Verify', [data, signature], () => native.C_VerifyAsync(session, data, signature))
    } catch (error) {
      if (operation.op === 'verify' && isTokenError(error, 'CKR_SIGNATURE_INVALID', 'CKR_SIGNATURE_LEN_RANGE')) return false
      // The operation may still be active after a failure (SoftHSM leaves it so): nobody inherits
      // this session; a refused input ended its operation.
      if (!rejectsInput(error)) spoil()
      throw error
    }
  }
}

/** `work`, or a TimeoutError at the deadline, or the signal's reason when it aborts; a late result is dropped. */
function withDeadline<T>(work: Promise<T>, { deadline, timeoutMs, signal }: RunOptions): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TimeoutError(timeoutMs)), Math.max(0, deadline - performance.now()))
    const onAbort = () => reject(signal!.reason)
    signal?.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
    })
  })
}
