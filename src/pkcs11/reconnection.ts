/**
 * The search for a token that went away, and the callers who wait for it. One search at a time;
 * it pauses between attempts (50 ms growing to 2 s), goes on while anyone waits (or always, when a
 * replica set counts on the token), and each waiter gives up at its own deadline or signal with an
 * error that names what made the token go.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { TokenError } from '../errors.js'
import { C } from './binding.js'
import { backoff } from './failures.js'

export interface ReconnectionSteps {
  /** One attempt: true when the token is back (sessions reopened, logged in). */
  attempt(): Promise<boolean>
  /** False once the search must stop (the token closed, or refused the PIN). */
  readonly wanted: boolean
}

export class Reconnection {
  readonly #steps: ReconnectionSteps
  #search: Promise<void> | undefined
  /** Callers waiting for the token to come back: the search keeps the process alive while there are any. */
  #waiting = 0
  /** A replica set counts on the token to come back: the search goes on with nobody waiting. */
  #always = false
  /** What made the token go away (or what it said last while coming back). */
  #lastFailure: TokenError | undefined

  constructor(steps: ReconnectionSteps) {
    this.#steps = steps
  }

  /** Callers waiting now. */
  get waiting(): number {
    return this.#waiting
  }

  get searching(): boolean {
    return this.#search !== undefined
  }

  /** Starts the search (once; a second failure joins the one under way). `always`: go on with nobody waiting. */
  start(failure: TokenError, always: boolean, onDone: () => void): void {
    this.#lastFailure = failure
    if (always) this.#always = true
    this.#search ??= this.#run().finally(() => {
      this.#search = undefined
      this.#always = false
      onDone()
    })
  }

  /** What the token said last, for the errors of those who waited in vain. */
  remember(failure: TokenError): void {
    this.#lastFailure = failure
  }

  /** Waits for the token to come back, until `deadline` (performance.now() time) or the signal. */
  wait(deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    const search = this.#search
    if (!search) return Promise.resolve()
    this.#waiting++
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      // A ref'd timer: a caller who waits keeps the process alive, as any pending I/O does.
      const expiry = setTimeout(() => reject(this.notBack(timeoutMs)), Math.max(0, deadline - performance.now()))
      const onAbort = () => reject(signal!.reason)
      signal?.addEventListener('abort', onAbort, { once: true })
      search.then(resolve, resolve).finally(() => {
        clearTimeout(expiry)
        signal?.removeEventListener('abort', onAbort)
      })
    }).finally(() => {
      this.#waiting--
    })
  }

  /** The error of a caller whose deadline passed while the token was away: it names what made it go. */
  notBack(timeoutMs: number): TokenError {
    const { code = 'CKR_DEVICE_REMOVED', returnValue = C.CKR_DEVICE_REMOVED, function: fn = 'C_Sign' } = this.#lastFailure ?? {}
    return new TokenError(code, returnValue, fn, timeoutMs > 0 ? `the token did not come back within ${timeoutMs} ms` : 'the token is away')
  }

  async #run(): Promise<void> {
    // The caller who saw the failure starts waiting right after this begins: give it a turn.
    await sleep(0)
    for (let attempt = 0; this.#steps.wanted && (this.#waiting > 0 || this.#always); attempt++) {
      await sleep(backoff(attempt), undefined, { ref: this.#waiting > 0 })
      if (!this.#steps.wanted) return
      if (await this.#steps.attempt()) return
    }
  }
}
