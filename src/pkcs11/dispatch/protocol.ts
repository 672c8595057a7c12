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
  /** The module's words of the copies of keys (session-copies.ts), when signatures use session copies of their keys. */
  keyCopies?: SharedArrayBuffer
}

/**
 * The bytes of a mechanism's parameter that change with each call (an IV, AAD, the peer's public
 * point, an OAEP label), by member name: they travel with the request in the batch memory, while
 * the mechanism table keeps the rest (one table entry per IV would grow forever). The name '' stands
 * for the whole parameter (CKM_AES_CBC_PAD's IV). A member `${name}Bits` of the fixed parameter is
 * set to the bytes' length in bits (CK_GCM_PARAMS.ulIvBits).
 */
export type CallParameter = ReadonlyArray<readonly [name: string, bytes: Uint8Array]>

/**
 * An operation that makes bytes with the key: `decrypt`/`encrypt` (C_Decrypt / C_Encrypt), `derive`
 * (C_DeriveKey into a session secret that is read and destroyed at once), `unwrap` (C_UnwrapKey the
 * same way), `wrap` (`data` is a key's value, made a session object, wrapped, destroyed).
 */
export interface KeyOperation {
  op: 'decrypt' | 'encrypt' | 'derive' | 'unwrap' | 'wrap'
  mechanism: Mechanism
  parameter?: CallParameter
  data: Uint8Array
  /** Room for the result: never less than the token may write (no CKR_BUFFER_TOO_SMALL). */
  outputLength: number
  keyPin?: string
}

/** One operation on a key, as the token layer asks for it. */
export type Operation =
  | { op: 'sign'; mechanism: Mechanism; parameter?: undefined; data: Uint8Array; outputLength: number; keyPin?: string }
  | { op: 'verify'; mechanism: Mechanism; parameter?: undefined; data: Uint8Array; signature: Uint8Array }
  | KeyOperation

/** A mechanism table entry: the fixed mechanism, and the names of the parameter members each request brings. */
export interface MechanismEntry {
  mechanism: Mechanism
  fields: string[]
}

/** The control words (Int32): batches posted by the main thread and done by the worker, and the order to stop. */
export const CONTROL = { posted: 0, done: 1, stop: 2, stopped: 3, words: 4 } as const

/**
 * Numbers a request takes in a batch's layout: what it is, its mechanism, and the lengths of its
 * parts (key handle, input, call parameter, then `last`).
 */
export const LAYOUT = { op: 0, mechanism: 1, keyLength: 2, dataLength: 3, parameterLength: 4, last: 5, size: 6 } as const
/**
 * In `LAYOUT.op`, by operation. In `LAYOUT.last`: the signature's length (verify), else the room
 * for the result, which follows the requests' bytes.
 */
export const OP_CODES = { sign: 0, verify: 1, decrypt: 2, encrypt: 3, derive: 4, unwrap: 5, wrap: 6 } as const satisfies Record<Operation['op'], number>
export const OPS = Object.keys(OP_CODES) as Array<Operation['op']>

/** Numbers a request takes in the results' status: 0 or its failure's code, and a length (sign, key operations) or 1/0 (verify). */
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
  | { type: 'mechanisms'; mechanisms: MechanismEntry[] }
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
