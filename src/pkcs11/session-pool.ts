/**
 * Sessions of the main thread's module instance (the signing workers hold their own). One
 * PKCS#11 session runs one operation at a time, so every operation borrows its own session
 * (`withSession`) and gives it back; callers beyond the pool's size wait in arrival order.
 *
 * A module initialized again (p11-kit's client after its server died) numbers its sessions from
 * the start: a handle from before may name another caller's new session. Such a stale handle is
 * never used or closed again, only forgotten.
 */
import { ClosedError } from '../errors.js'
import { C, callSync, isTokenError, type Handle, type PKCS11 } from './binding.js'
import { SESSION_LOST } from './failures.js'

export class SessionPool {
  readonly #native: PKCS11
  /** The module's initialization count now (Pkcs11Module.generation). */
  readonly #generation: () => number
  /** The initialization each open session was opened in. */
  readonly #openedIn = new Map<Handle, number>()
  #slot: Handle
  readonly #size: number
  readonly #idle: Handle[] = []
  readonly #waiting: Array<{ resolve: (session: Handle) => void; reject: (error: Error) => void }> = []
  #open = 0
  #closed = false
  /** Resolves when, after close(), the last borrowed session has come back and been closed. */
  #drained?: () => void

  constructor(native: PKCS11, slot: Handle, size: number, generation: () => number) {
    this.#native = native
    this.#generation = generation
    this.#slot = slot
    this.#size = Math.max(1, size)
  }

  /** Sessions open now (borrowed or idle). */
  get openSessions(): number {
    return this.#open
  }

  /**
   * Runs `use` with a session of its own, then returns the session to the pool.
   *
   * @example
   * const key = await pool.withSession((session) => {
   *   native.C_FindObjectsInit(session, template)
   *   try { return native.C_FindObjects(session) } finally { native.C_FindObjectsFinal(session) }
   * })
   */
  async withSession<T>(use: (session: Handle, spoil: () => void) => Promise<T> | T): Promise<T> {
    let session = await this.#acquire()
    while (this.#isStale(session)) {
      this.#giveBack(session, false)
      session = await this.#acquire()
    }
    // `spoil()` says the session is left in a state no one may inherit (an operation still active).
    let reusable = true
    try {
      return await use(session, () => {
        reusable = false
      })
    } catch (error) {
      if (isTokenError(error, ...SESSION_LOST)) reusable = false
      throw error
    } finally {
      this.#giveBack(session, reusable)
    }
  }

  /** Callers waiting for a session now. */
  get waiting(): number {
    return this.#waiting.length
  }

  /**
   * Runs a short synchronous `use` at once: on an idle session, or on one opened for it when all
   * are busy (the WebCrypto API has synchronous calls, such as getRandomValues, that cannot wait).
   */
  withSessionSync<T>(use: (session: Handle) => T): T {
    if (this.#closed) throw new ClosedError()
    let pooled = this.#idle.pop()
    while (pooled && this.#isStale(pooled)) {
      this.#closeSession(pooled)
      pooled = this.#idle.pop()
    }
    const session = pooled ?? this.#openSession()
    let reusable = true
    try {
      return use(session)
    } catch (error) {
      reusable = !isTokenError(error, ...SESSION_LOST)
      throw error
    } finally {
      if (pooled || this.#open <= this.#size) this.#giveBack(session, reusable)
      else this.#closeSession(session)
    }
  }

  /** False when an idle session no longer answers (the token went away with it). */
  stillValid(): boolean {
    return this.#idle.every((session) => {
      if (this.#isStale(session)) return false
      try {
        this.#native.C_GetSessionInfo(session)
        return true
      } catch {
        return false
      }
    })
  }

  /**
   * Forgets the idle sessions (the token went away with them) and opens the next ones in `slot`,
   * where the token is now. Borrowed sessions are dropped when they fail on their return.
   */
  reset(slot: Handle): void {
    this.#slot = slot
    for (const session of this.#idle.splice(0)) this.#closeSession(session)
  }

  /**
   * Closes every session. New callers get a ClosedError; callers already waiting and operations
   * under way finish first (sessions close as they come back), so the module is never finalized
   * under them.
   */
  close(): Promise<void> {
    this.#closed = true
    for (const session of this.#idle.splice(0)) this.#closeSession(session)
    return this.#open === 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          this.#drained = resolve
        })
  }

  #acquire(): Promise<Handle> {
    if (this.#closed) return Promise.reject(new ClosedError())
    const idle = this.#idle.pop()
    if (idle) return Promise.resolve(idle)
    if (this.#open < this.#size) {
      try {
        return Promise.resolve(this.#openSession())
      } catch (error) {
        return Promise.reject(error)
      }
    }
    return new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }))
  }

  #giveBack(session: Handle, reusable: boolean): void {
    if (this.#closed && this.#waiting.length === 0) return this.#closeSession(session)
    if (!reusable) {
      // PKCS#11 logs the user out with the application's last session: open its successor first.
      const successor = this.#open === 1 ? this.#tryOpenSession() : undefined
      this.#closeSession(session)
      if (!successor) return this.#openForNextWaiter()
      session = successor
    }
    const waiter = this.#waiting.shift()
    if (waiter) waiter.resolve(session)
    else this.#idle.push(session)
  }

  /** A dropped session frees a place: the next waiter gets a new session in it. */
  #openForNextWaiter(): void {
    const waiter = this.#waiting.shift()
    if (!waiter) return
    try {
      waiter.resolve(this.#openSession())
    } catch (error) {
      waiter.reject(error as Error)
    }
  }

  #tryOpenSession(): Handle | undefined {
    try {
      return this.#openSession()
    } catch {
      return undefined
    }
  }

  #openSession(): Handle {
    const session = callSync('C_OpenSession', () => this.#native.C_OpenSession(this.#slot, C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION))
    this.#open++
    this.#openedIn.set(session, this.#generation())
    return session
  }

  /** Opened before the module was initialized again: it names nothing now, or someone else's session. */
  #isStale(session: Handle): boolean {
    return this.#openedIn.get(session) !== this.#generation()
  }

  #closeSession(session: Handle): void {
    if (!this.#isStale(session)) {
      try {
        this.#native.C_CloseSession(session)
      } catch {
        // The session is gone already (device removed, handle invalid): nothing left to release.
      }
    }
    this.#openedIn.delete(session)
    if (--this.#open === 0) this.#drained?.()
  }
}
