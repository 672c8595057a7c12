/**
 * Messages between the main thread and the signing workers. Everything here is structured-clone
 * data: handles and bytes travel as Uint8Arrays.
 */
import type { Mechanism } from '../binding.js'

/** What the worker needs to reach the token: the library (already initialized) and the slot. */
export interface WorkerSetup {
  library: string
  slot: Uint8Array
}

export type Operation =
  | { op: 'sign', key: Uint8Array, mechanism: Mechanism, data: Uint8Array, outputLength: number, keyPin?: string }
  | { op: 'verify', key: Uint8Array, mechanism: Mechanism, data: Uint8Array, signature: Uint8Array }

export type Request = Operation & { id: number }

export type Result =
  | { id: number, ok: true, value: Uint8Array | boolean }
  /** A PKCS#11 failure (`code` is the CK_RV) or another error (`code` absent). */
  | { id: number, ok: false, fn: string, code?: number, message: string }

export type ToWorker =
  | { type: 'batch', requests: Request[] }
  /** The token is in another slot now (it came back after a removal). */
  | { type: 'slot', slot: Uint8Array }
  | { type: 'close' }

export type FromWorker =
  /** Whether this load of the module shares the main thread's instance (its login and handles). */
  | { type: 'ready', shared: boolean }
  /** `busyMs`: time spent in PKCS#11 calls for the batch; `sessions`: sessions the worker holds now. */
  | { type: 'results', results: Result[], busyMs: number, sessions: number }
  | { type: 'closed' }
