/**
 * Messages between the main thread and the signing workers. A batch travels as two typed arrays
 * that are transferred, not cloned: a layout (five numbers a request) and the bytes of every key
 * handle, input and signature one after another. The results come back the same way. Structured
 * cloning an object per request cost more main-thread time than a fast token's signature.
 */
import type { Mechanism } from '../binding.js'

/** What the worker needs to reach the token: the library (already initialized) and the slot. */
export interface WorkerSetup {
  library: string
  slot: Uint8Array
}

/** One operation on a key, as the token layer asks for it. */
export type Operation =
  | { op: 'sign', mechanism: Mechanism, data: Uint8Array, outputLength: number, keyPin?: string }
  | { op: 'verify', mechanism: Mechanism, data: Uint8Array, signature: Uint8Array }

/** Numbers a request takes in a batch's layout: what it is, its mechanism, and the lengths of its parts. */
export const LAYOUT = { op: 0, mechanism: 1, keyLength: 2, dataLength: 3, last: 4, size: 5 } as const
/** In `LAYOUT.op`. In `LAYOUT.last`: the signature's greatest length (sign) or the signature's length (verify). */
export const SIGN = 0
export const VERIFY = 1

/** Numbers a request takes in the results' status: 0 or its failure's code, and a length (sign) or 1/0 (verify). */
export const STATUS = { code: 0, value: 1, size: 2 } as const
/** In `STATUS.code`: a failure that is not a PKCS#11 return value. */
export const NOT_PKCS11 = -1

export interface Batch {
  layout: Uint32Array<ArrayBuffer>
  bytes: Uint8Array<ArrayBuffer>
  /** Mechanisms first used by this batch; the worker appends them to its table (ids count from 0). */
  newMechanisms: Mechanism[]
  /** Key PINs by request, for CKA_ALWAYS_AUTHENTICATE keys; absent when no request has one. */
  keyPins?: Array<string | undefined>
}

/** Why a request failed: the function, and the error's message. */
export interface Failure {
  index: number
  fn: string
  message: string
}

export interface Results {
  status: Int32Array<ArrayBuffer>
  /** The signatures, each at the sum of the greatest lengths of the sign requests before it. */
  output: Uint8Array<ArrayBuffer>
  failures: Failure[]
  /** Time spent in PKCS#11 calls for the batch. */
  busyMs: number
  /** Sessions the worker holds now. */
  sessions: number
}

export type ToWorker =
  | ({ type: 'batch' } & Batch)
  /** The token is in another slot now (it came back after a removal). */
  | { type: 'slot', slot: Uint8Array }
  | { type: 'close' }

export type FromWorker =
  /** Whether this load of the module shares the main thread's instance (its login and handles). */
  | { type: 'ready', shared: boolean }
  | ({ type: 'results' } & Results)
  | { type: 'closed' }
