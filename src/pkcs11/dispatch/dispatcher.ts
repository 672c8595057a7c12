/** How signatures reach the token: the one interface of the signing workers and of the thread-pool fallback. */
import type { Handle } from '../binding.js'
import type { Operation } from './protocol.js'

/** When a request must be answered by, and who may cancel it. */
export interface RunOptions {
  /** performance.now() time after which the caller gets a TimeoutError. */
  deadline: number
  /** The whole time the caller allowed, for the TimeoutError's message. */
  timeoutMs: number
  signal?: AbortSignal
}

export interface Dispatcher {
  /** Sessions it holds now. */
  readonly openSessions: number
  /** Runs one operation with the key `key`; resolves with its bytes (a signature, a decryption ...) or a verification's result. */
  run(key: Handle, operation: Operation, options: RunOptions): Promise<Uint8Array | boolean>
  /** The token is in `slot` now (it came back, or the module was initialized again): reopen sessions there. */
  retarget(slot: Handle): void
  /** Waits for the work under way, then closes every session. */
  close(): Promise<void>
}
