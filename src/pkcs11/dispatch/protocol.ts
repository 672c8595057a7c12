/**
 * How the main thread and a signing worker talk. A batch of requests is written into shared memory
 * (a BatchMemory), the worker is woken with Atomics.notify, runs it, writes the results into the
 * same memory and wakes the main thread, which waits with Atomics.waitAsync. Nothing is cloned or
 * posted per batch: a message each way cost more CPU than a fast token's signature. What changes
 * rarely (new mechanisms, other memory, another slot, key PINs, failure messages) travels as
 * messages on a port of their own, read synchronously on the other side before the batch.
 */
import type { Mechanism } from '../binding.js'

/** What the worker needs to reach the token: the library (already initialized), the slot, and the shared memory. */
export interface WorkerSetup {
  library: string
  slot: Uint8Array
  /** CONTROL words, and a BatchMemory per pipeline place. */
  control: SharedArrayBuffer
  memories: SharedArrayBuffer[]
}

/** One operation on a key, as the token layer asks for it. */
export type Operation =
  { op: 'sign'; mechanism: Mechanism; data: Uint8Array; outputLength: number; keyPin?: string } | { op: 'verify'; mechanism: Mechanism; data: Uint8Array; signature: Uint8Array }

/** The control words (Int32): batches posted by the main thread and done by the worker, and the order to stop. */
export const CONTROL = { posted: 0, done: 1, stop: 2, stopped: 3, words: 4 } as const

/** Numbers a request takes in a batch's layout: what it is, its mechanism, and the lengths of its parts. */
export const LAYOUT = { op: 0, mechanism: 1, keyLength: 2, dataLength: 3, last: 4, size: 5 } as const
/** In `LAYOUT.op`. In `LAYOUT.last`: the signature's greatest length (sign) or the signature's length (verify). */
export const SIGN = 0
export const VERIFY = 1

/** Numbers a request takes in the results' status: 0 or its failure's code, and a length (sign) or 1/0 (verify). */
export const STATUS = { code: 0, value: 1, size: 2 } as const
/** In `STATUS.code`: a failure that is not a PKCS#11 return value. */
export const NOT_PKCS11 = -1

/** Why a request failed: the function, and the error's message. */
export interface Failure {
  index: number
  fn: string
  message: string
}

/** Messages to the worker, read before the batch they precede. */
export type ToWorker =
  /** Mechanisms first used by the next batch; the worker appends them to its table (ids count from 0). */
  | { type: 'mechanisms'; mechanisms: Mechanism[] }
  /** Pipeline place `place` has other memory from now on (grown for a large input, or shrunk back). */
  | { type: 'memory'; place: number; memory: SharedArrayBuffer }
  /** Key PINs by request index for batch number `batch` (CKA_ALWAYS_AUTHENTICATE keys). */
  | { type: 'keyPins'; batch: number; keyPins: Array<string | undefined> }
  /** The token is in another slot now (it came back after a removal). */
  | { type: 'slot'; slot: Uint8Array }

export type FromWorker =
  /** Whether this load of the module shares the main thread's instance (its login and handles). */
  | { type: 'ready'; shared: boolean }
  /** The failures of the batch just done, when it had any. */
  | { type: 'failures'; failures: Failure[] }
