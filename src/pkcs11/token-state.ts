/**
 * The life of an open token, as one explicit state machine that every path of the token layer
 * goes through:
 *
 *   up ──(device gone)──> reconnecting ──(found, logged in)──> up
 *   up ──(login lost)───> logged-out ───(logged in)──────────> up
 *   up | logged-out | reconnecting ──(PIN refused)──> refused
 *   any ──close()──> closing ──(calls done, sessions closed)──> closed
 *
 * `refused` and `closed` are final: no login is tried again, every call fails at once.
 */
import { ClosedError } from '../errors.js'

export type TokenState = 'up' | 'reconnecting' | 'logged-out' | 'refused' | 'closing' | 'closed'

const NEXT: Record<TokenState, readonly TokenState[]> = {
  up: ['reconnecting', 'logged-out', 'refused', 'closing'],
  reconnecting: ['up', 'refused', 'closing'],
  'logged-out': ['up', 'refused', 'reconnecting', 'closing'],
  refused: ['closing'],
  closing: ['closed'],
  closed: [],
}

export class TokenLifecycle {
  #state: TokenState = 'up'
  /** Why the token is refused: the error every call fails with. */
  #refusal: Error | undefined

  get state(): TokenState {
    return this.#state
  }

  /**
   * Moves to `next`; false when the machine does not allow it from here (a failure noticed while
   * closing does not start a reconnection, say).
   */
  to(next: TokenState): boolean {
    if (next === this.#state) return true
    if (!NEXT[this.#state].includes(next)) return false
    this.#state = next
    return true
  }

  /** Final: the token refused the PIN; `error` is what every later call fails with. */
  refuse(error: Error): void {
    if (this.to('refused')) this.#refusal = error
  }

  /** Throws what a call must fail with now, if anything: the refusal, or ClosedError. */
  check(): void {
    if (this.#state === 'refused') throw this.#refusal!
    if (this.#state === 'closing' || this.#state === 'closed') throw new ClosedError()
  }
}
