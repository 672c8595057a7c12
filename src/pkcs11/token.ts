/**
 * One token, opened and logged in: the token layer's face to the rest of the library. It speaks
 * PKCS#11 (handles, mechanisms, attributes) and hides modules, sessions, login, the signing
 * dispatch, and recovery when the token fails or goes away. It is a thin composition of
 * TokenLifecycle (the state machine), Reconnection, LoginPolicy and TokenObjects, whose lookups and
 * changes all borrow the one lookup session of a SessionPool.
 */
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { InputRejectedError, KeyNotFoundError, TokenError } from '../errors.js'
import { callAsync, callSync, isTokenError, sendable, type Handle, type Mechanism, type Template } from './binding.js'
import type { KeyOperation, Operation } from './dispatch/protocol.js'
import type { Dispatcher } from './dispatch/dispatcher.js'
import { ThreadPoolDispatcher } from './dispatch/thread-pool.js'
import { WorkerPool, type InPlaceMode } from './dispatch/worker-pool.js'
import { rejectsInput, remedyFor } from './failures.js'
import { LoginPolicy, isPinRefusal } from './login.js'
import type { CallOptions, Signer } from './signer.js'
import { Pkcs11Module } from './module.js'
import { Reconnection } from './reconnection.js'
import { SessionPool } from './session-pool.js'
import { describeSlots, selectSlot, type SlotDescription, type TokenSelector } from './slots.js'
import { CHANGES, IN_USE, type SessionKeyCopies } from './dispatch/session-copies.js'
import { TokenObjects } from './token-objects.js'
import { TokenLifecycle } from './token-state.js'

export interface TokenOptions {
  /** Path of the PKCS#11 library. */
  library: string
  /** C_Initialize's library parameters (pReserved), for modules that need them (NSS's softokn). */
  libraryParameters?: string
  /** Which token; when absent, the only token present. */
  token?: TokenSelector
  /**
   * The user PIN: one C_Login at open; kept (never shown) only to log in again after the token
   * lost the login or came back from a removal, and dropped at once if the token refuses it.
   */
  pin?: string
  /**
   * Upper bound on the sessions opened (default 8; never above the token's own limit): one for
   * lookups, the others for signing workers, which grow past the number of cores only for a slow device.
   */
  maxSessions?: number
  /** How long a call may wait, in ms, for a session or for the token to come back (default 30 s). */
  timeout?: number
  /** Calls that may wait for a session at once; more fail at once with QueueFullError (default 10,000). */
  maxQueue?: number
  /** How long, in ms, a search that found objects is reused (default 5,000; 0: every lookup searches). */
  searchCacheMs?: number
  /** Which signatures of a kind the device makes in 2 ms or less are made on the main thread (default 'auto'). */
  inPlace?: InPlaceMode
  /** Whether signing sessions sign with session copies of their keys (default 'software': on a software slot). */
  sessionKeyCopies?: SessionKeyCopies
}

/**
 * A key object on the token, found again by its attributes when the token came back (handles
 * need not survive a removal).
 */
export class KeyRef {
  readonly template: Template
  handle: Handle
  generation: number

  constructor(template: Template, handle: Handle, generation: number) {
    this.template = template
    this.handle = handle
    this.generation = generation
  }
}

export const DEFAULT_MAX_SESSIONS = 8
export const DEFAULT_TIMEOUT_MS = 30_000
export const DEFAULT_MAX_QUEUE = 10_000
export const DEFAULT_SEARCH_CACHE_MS = 5_000
/** Tries of one call at most, whatever cured the failures before. */
const MAX_ATTEMPTS = 6
const CK_EFFECTIVELY_INFINITE = 0
/** The largest CK_ULONG means "unavailable information". */
const UNAVAILABLE = [0xffffffff, Number.MAX_SAFE_INTEGER, 2 ** 64 - 1]

export class Token {
  /** The mechanisms (CKM_ numbers) the token lists; read once. */
  readonly mechanisms: ReadonlySet<number>
  readonly #module: Pkcs11Module
  /** Sessions for lookups, object changes and key generation. */
  readonly #pool: SessionPool
  /** Signing and verifying: on worker threads, or (modules that cannot share a login across threads) the libuv pool. */
  #workers!: Dispatcher
  readonly #life = new TokenLifecycle()
  readonly #login: LoginPolicy
  readonly #objects: TokenObjects
  readonly #reconnection: Reconnection
  readonly #timeoutMs: number
  /** This token as a user of the module: called when any user of the module initialized it again. */
  readonly #moduleUser: () => void
  #slot: SlotDescription
  /** Counts the times handles may have changed: a KeyRef found in an older generation is looked up again. */
  #generation = 0
  #closing: Promise<void> | undefined

  private constructor(module: Pkcs11Module, moduleUser: () => void, slot: SlotDescription, pool: SessionPool, options: TokenOptions) {
    this.#module = module
    this.#moduleUser = moduleUser
    this.#slot = slot
    this.#pool = pool
    this.#timeoutMs = options.timeout ?? DEFAULT_TIMEOUT_MS
    const token = slot.token!
    this.#login = new LoginPolicy({ native: module.native, identity: `${module.fileId}/${token.serial}/${token.label}`, label: token.label, flags: token.flags }, options.pin)
    this.#objects = new TokenObjects(
      {
        native: module.native,
        withSession: (use) => this.#lookup(use),
        restoreLogin: (session) => this.#restoreLogin(session),
      },
      options.searchCacheMs ?? DEFAULT_SEARCH_CACHE_MS,
      module.keyCopies,
    )
    const life = this.#life
    const reconnection: Reconnection = (this.#reconnection = new Reconnection({
      attempt: () => this.#reconnectOnce(),
      // While closing, only for the calls made before close() that wait for the token.
      get wanted() {
        return life.state === 'reconnecting' || (life.state === 'closing' && reconnection.waiting > 0)
      },
    }))
    this.mechanisms = new Set(callSync('C_GetMechanismList', () => module.native.C_GetMechanismList(slot.slot)))
  }

  /**
   * Loads the module (once per process), finds the token and logs in with one C_Login.
   * A wrong PIN fails at once with CKR_PIN_INCORRECT and is never retried.
   *
   * @example
   * const token = await Token.open({ library: '/usr/lib/softhsm/libsofthsm2.so', token: { label: 'demo' }, pin: '1234' })
   */
  static async open(options: TokenOptions): Promise<Token> {
    const user: { token?: Token } = {}
    const moduleUser = () => {
      if (user.token) user.token.#afterReinitialize()
    }
    const module = await Pkcs11Module.acquire(options.library, moduleUser, options.libraryParameters)
    let pool: SessionPool | undefined
    try {
      const slot = selectSlot(module.native, options.token)
      // One session serves lookups and changes (rare, after start-up); the rest sign.
      const limit = sessionLimit(slot, options.maxSessions)
      const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE
      const generation = () => module.generation
      pool = new SessionPool(module.native, slot.slot, 1, generation)
      const token = new Token(module, moduleUser, slot, pool, options)
      pool.withSessionSync((session) => token.#login.open(session))
      // Whether the signing sessions sign with copies of keys (session-copies.ts).
      const copies = options.sessionKeyCopies ?? 'software'
      const keyCopies = copies === 'always' || (copies === 'software' && !slot.hardware) ? module.keyCopies : undefined
      const workers = await WorkerPool.start({
        library: module.path,
        slot: slot.slot,
        activity: module.activity,
        cores: availableParallelism(),
        maxWorkers: Math.max(1, limit - 1),
        maxQueue,
        native: module.native,
        inPlace: options.inPlace ?? 'auto',
        keyCopies,
      })
      // From now on, before any copy is made, every search of the module's tokens leaves the copies out (token-objects.ts).
      if (workers && keyCopies) Atomics.store(keyCopies, IN_USE, 1)
      token.#workers = workers ?? new ThreadPoolDispatcher(module.native, slot.slot, Math.max(1, limit - 1), maxQueue, generation, module.activity)
      user.token = token
      return token
    } catch (error) {
      await pool?.close()
      await module.release(moduleUser)
      throw error
    }
  }

  get closed(): boolean {
    return this.#life.state === 'closing' || this.#life.state === 'closed'
  }

  /** Throws ClosedError once the token is closed (or closing), or the refusal once it refused the PIN. */
  assertUsable(): void {
    this.#life.check()
  }

  /** The slot and token, as found at open (or when the token came back). */
  get slot(): SlotDescription {
    return this.#slot
  }

  /** A reference to the key object `handle`, which `template` finds again after a reconnection. */
  keyRef(handle: Handle, template: Template): KeyRef {
    return new KeyRef(template, handle, this.#generation)
  }

  /** A reference to a key whose handle is not known yet (its token is away): found at first use. */
  keyRefToFind(template: Template): KeyRef {
    return new KeyRef(template, Buffer.alloc(0), -1)
  }

  /** True while calls are served without waiting: the token is up (not away, refused or closed). */
  get available(): boolean {
    return this.#life.state === 'up'
  }

  /** The key `key` as a Signer, alone or as a member of a ReplicaSet. */
  signer(key: KeyRef): Signer {
    const isAvailable = () => this.available
    return {
      get available() {
        return isAvailable()
      },
      hasMechanism: (mechanism) => this.hasMechanism(mechanism),
      sign: (mechanism, data, outputLength, options) => this.sign(key, mechanism, data, outputLength, options),
      verify: (mechanism, data, signature, options) => this.verify(key, mechanism, data, signature, options),
      operate: (operation, options) => this.operate(key, operation, options),
    }
  }

  /** Sessions open now (the pool's and the signing workers'); for tests and diagnostics. */
  get openSessions(): number {
    return this.#pool.openSessions + this.#workers.openSessions
  }

  hasMechanism(mechanism: number): boolean {
    return this.mechanisms.has(mechanism)
  }

  /**
   * Signs `data` with the key on the token, on a signing worker or in place. `keyPin` is sent with a
   * CKU_CONTEXT_SPECIFIC login right after C_SignInit, for CKA_ALWAYS_AUTHENTICATE keys.
   */
  sign(key: KeyRef, mechanism: Mechanism, data: Uint8Array, maxLength: number, options: CallOptions = {}): Promise<Uint8Array> {
    return this.#run(key, { op: 'sign', mechanism, data, outputLength: maxLength, keyPin: options.keyPin }, options) as Promise<Uint8Array>
  }

  /** Verifies `signature` on the token; false for a wrong signature, an error for anything else. */
  verify(key: KeyRef, mechanism: Mechanism, data: Uint8Array, signature: Uint8Array, options: CallOptions = {}): Promise<boolean> {
    return this.#run(key, { op: 'verify', mechanism, data, signature }, options) as Promise<boolean>
  }

  /**
   * Decrypts, encrypts, derives, unwraps or wraps with the key on the token, on a signing worker.
   * An input the token refuses (see rejectsInput) fails at once with InputRejectedError: never
   * tried again, no reconnection, whatever code the token gave.
   */
  operate(key: KeyRef, operation: KeyOperation, options: CallOptions = {}): Promise<Uint8Array> {
    return this.#run(key, { ...operation, keyPin: options.keyPin }, options) as Promise<Uint8Array>
  }

  /**
   * Runs an operation that is safe to repeat: a failure that a new session, a new login or the
   * token's return can cure is cured and the operation tried once more, all within the deadline.
   * A call made before close() finishes; one made after fails with ClosedError.
   */
  async #run(key: KeyRef, operation: Operation, options: CallOptions): Promise<Uint8Array | boolean> {
    this.#life.check()
    const timeoutMs = options.timeout ?? this.#timeoutMs
    const deadline = performance.now() + timeoutMs
    // Each remedy is tried once (a token whose sessions were all closed needs a new session, then a
    // new login), and once more after the token came back or the module was initialized again
    // under the call (its handles changed): a few tries in all.
    let tried: Set<string> | undefined
    let triedIn = this.#generation
    for (let attempt = 0; ; attempt++) {
      if (this.#generation !== triedIn) {
        tried = undefined
        triedIn = this.#generation
      }
      if (this.#life.state === 'refused') this.#life.check()
      if (this.#reconnection.searching) {
        if (options.failFast) throw this.#reconnection.notBack(0)
        await this.#reconnection.wait(deadline, timeoutMs, options.signal)
      }
      try {
        // The handle of the current generation is known: no lookup, no await, on the signing path.
        const handle = key.generation === this.#generation ? key.handle : await this.#findAgain(key)
        return await this.#workers.run(handle, operation, { deadline, timeoutMs, signal: options.signal })
      } catch (error) {
        if (rejectsInput(error)) throw new InputRejectedError()
        const remedy = remedyFor(error)
        if (!remedy || tried?.has(remedy) || attempt >= MAX_ATTEMPTS || this.#life.state === 'closed') throw error
        ;(tried ??= new Set()).add(remedy)
        if (remedy === 'login') this.#relogin(error as TokenError)
        if (remedy === 'refind') await this.#refind(key)
        if (remedy === 'reconnect') {
          this.#startReconnecting(error as TokenError, options.failFast === true)
          if (options.failFast) throw error
        }
      }
    }
  }

  /**
   * The key's handle means nothing now. A token logged out by someone else answers so for a
   * private key too (SoftHSM: CKR_OBJECT_HANDLE_INVALID): the login is checked, and restored, first.
   */
  async #refind(key: KeyRef): Promise<void> {
    await this.#lookup((session) => this.#restoreLogin(session))
    key.generation = -1
    this.#objects.clear()
  }

  /** Looks the key up again (the token came back, or its handle went stale) and remembers the new handle. */
  async #findAgain(key: KeyRef): Promise<Handle> {
    const generation = this.#generation
    const [handle] = await this.#objects.find(key.template)
    if (!handle) throw new KeyNotFoundError(`the key is no longer on token "${this.#slot.token!.label}"`)
    key.handle = handle
    key.generation = generation
    return handle
  }

  #startReconnecting(failure: TokenError, always: boolean): void {
    // Closing: a call made before close() may still wait for the token within its deadline.
    if (!this.#life.to('reconnecting') && this.#life.state !== 'closing') return
    this.#reconnection.start(failure, always, () => {
      if (this.#life.state === 'reconnecting') this.#life.to('up')
    })
  }

  /** Runs `use` on the lookup session; a failure that says the token went away starts the search for it. */
  async #lookup<T>(use: (session: Handle) => Promise<T> | T, repeatable = true): Promise<T> {
    this.#life.check()
    try {
      return await this.#pool.withSession(use)
    } catch (error) {
      // The session was closed under a lookup (C_CloseAllSessions by another user): the pool
      // dropped it; once more on a new one. Changes of objects are never repeated.
      if (!repeatable || !isTokenError(error, 'CKR_SESSION_HANDLE_INVALID', 'CKR_SESSION_CLOSED')) throw this.#noticed(error)
    }
    try {
      return await this.#pool.withSession(use)
    } catch (error) {
      throw this.#noticed(error)
    }
  }

  /**
   * `error`, after starting the search for the token when it says the token went away: a call that
   * cannot wait (a lookup, getRandomValues) fails, and the token is found again for the next one.
   */
  #noticed(error: unknown): unknown {
    if (remedyFor(error) === 'reconnect') this.#startReconnecting(error as TokenError, true)
    return error
  }

  /**
   * One attempt to find the token again (same serial and label, in whatever slot), reopen sessions
   * and log in again; true when it is back. Handles are looked up anew afterwards.
   */
  async #reconnectOnce(): Promise<boolean> {
    const { serial, label } = this.#slot.token!
    const seen = this.#module.generation
    try {
      const slots = describeSlots(this.#module.native)
      // No slot at all: a module that connects once, at C_Initialize (p11-kit's client), and did so
      // while its server was away. Initialize it again; a device's own module keeps its slots.
      if (slots.length === 0) await this.#module.reinitialize(seen)
      const slot = slots.find((s) => s.token?.serial === serial && s.token.label === label)
      if (!slot) return false
      // A token that was only unwell for a moment keeps its sessions (and the session objects they made).
      if (slot.slotId !== this.#slot.slotId || !this.#pool.stillValid()) {
        this.#pool.reset(slot.slot)
        this.#workers.retarget(slot.slot)
      }
      this.#slot = slot
      this.#pool.withSessionSync((session) => this.#restoreLogin(session))
      this.#objects.clear()
      this.#generation++
      return this.#life.state !== 'refused'
    } catch (error) {
      if (this.#life.state === 'refused') return true
      // Not back yet (or half back): try again after the pause, remembering what the token said.
      if (error instanceof TokenError) this.#reconnection.remember(error)
      // A module that lost its device (or its server) may need initializing again to see it back.
      if (isTokenError(error, 'CKR_DEVICE_ERROR', 'CKR_CRYPTOKI_NOT_INITIALIZED', 'CKR_GENERAL_ERROR')) {
        try {
          await this.#module.reinitialize(seen)
        } catch (failure) {
          if (failure instanceof TokenError) this.#reconnection.remember(failure)
        }
      }
      return false
    }
  }

  /**
   * Someone (this token or another of the module) initialized the module again: every session and
   * the login are gone. The workers forget their sessions, handles are looked up anew, and the
   * token logs in again now, before any held call goes on.
   */
  #afterReinitialize(): void {
    if (this.closed) return
    this.#workers?.retarget(this.#slot.slot)
    this.#objects.clear()
    this.#generation++
    try {
      this.#pool.withSessionSync((session) => this.#restoreLogin(session))
    } catch (error) {
      this.#noticed(error)
    }
  }

  /** The token says the user is not logged in: read its state, log in again once if so. */
  #relogin(failure: TokenError): void {
    if (!this.#login.hasPin) throw failure
    this.#life.to('logged-out')
    try {
      this.#pool.withSessionSync((session) => this.#restoreLogin(session))
    } finally {
      if (this.#life.state === 'logged-out') this.#life.to('up')
    }
  }

  /** Logs in again if the token lost the login; a refused PIN ends the token's life. */
  #restoreLogin(session: Handle): boolean {
    try {
      return this.#login.restore(session)
    } catch (error) {
      if (isPinRefusal(error)) this.#life.refuse(error as Error)
      throw error
    }
  }

  /** Generates a key pair on the token (thread pool); returns the two handles. */
  generateKeyPair(mechanism: Mechanism, publicTemplate: Template, privateTemplate: Template): Promise<{ publicKey: Handle; privateKey: Handle }> {
    return this.#changeObjects((session, native) =>
      this.#module.activity.run(() =>
        callAsync('C_GenerateKeyPair', [], () => native.C_GenerateKeyPairAsync(session, mechanism, sendable(publicTemplate), sendable(privateTemplate))),
      ),
    )
  }

  /** Generates a secret key on the token (thread pool). */
  generateKey(mechanism: Mechanism, template: Template): Promise<Handle> {
    return this.#changeObjects((session, native) =>
      this.#module.activity.run(() => callAsync('C_GenerateKey', [], () => native.C_GenerateKeyAsync(session, mechanism, sendable(template)))),
    )
  }

  /** Creates an object (key, certificate) from its attributes. */
  createObject(template: Template): Promise<Handle> {
    return this.#changeObjects((session, native) => callSync('C_CreateObject', () => native.C_CreateObject(session, sendable(template))))
  }

  /** Sets attributes of an object (CKA_ID, CKA_LABEL ...). */
  setAttributes(handle: Handle, template: Template): Promise<void> {
    return this.#changeObjects((session, native) => callSync('C_SetAttributeValue', () => native.C_SetAttributeValue(session, handle, sendable(template))), handle)
  }

  /** Destroys an object. */
  destroyObject(handle: Handle): Promise<void> {
    return this.#changeObjects((session, native) => callSync('C_DestroyObject', () => native.C_DestroyObject(session, handle)), handle)
  }

  /** Fills `target` from the token's random number generator (synchronous, as WebCrypto's is). */
  generateRandom(target: Buffer): void {
    this.#life.check()
    try {
      this.#pool.withSessionSync((session) => {
        callSync('C_GenerateRandom', () => this.#module.native.C_GenerateRandom(session, target))
      })
    } catch (error) {
      throw this.#noticed(error)
    }
  }

  /** Handles of the objects matching `template`; a search that found objects is reused for `searchCacheMs`. */
  findObjects(template: Template): Promise<Handle[]> {
    this.#life.check()
    return this.#objects.find(template)
  }

  /**
   * The values of the attributes `types` of one object; an attribute the object lacks or keeps
   * secret comes back undefined. Values are cached: read only public, unchanging attributes here.
   */
  getAttributes(handle: Handle, types: number[]): Promise<Map<number, Buffer | undefined>> {
    this.#life.check()
    return this.#objects.attributes(handle, types)
  }

  /** Like getAttributes, never cached: for values that change or must not linger (key material). */
  readAttributes(handle: Handle, types: number[]): Promise<Map<number, Buffer | undefined>> {
    return this.#objects.read(handle, types)
  }

  /**
   * Lets every call made before it finish (each within its own deadline), then closes every
   * session (closing the last session of the process on this token logs the user out) and gives
   * the module back. Idempotent: every caller waits for the same close.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close(): Promise<void> {
    this.#life.to('closing')
    await this.#workers.close()
    await this.#pool.close()
    this.#login.forget()
    await this.#module.release(this.#moduleUser)
    this.#life.to('closed')
  }

  /**
   * Runs a change of the token's objects; searches are forgotten after it, whatever happened. A
   * change of the existing object `changed` (its attributes, or its end) also forgets what was read
   * of it, and, once made, every signing session's copies of keys (session-copies.ts): made
   * before, a copy could be made again of the key as it was.
   */
  async #changeObjects<T>(change: (session: Handle, native: Pkcs11Module['native']) => Promise<T> | T, changed?: Handle): Promise<T> {
    if (changed) this.#objects.changed(changed)
    try {
      return await this.#lookup((session) => change(session, this.#module.native), false)
    } finally {
      this.#objects.changed()
      if (changed) Atomics.add(this.#module.keyCopies, CHANGES, 1)
    }
  }
}

function sessionLimit(slot: SlotDescription, requested = DEFAULT_MAX_SESSIONS): number {
  const tokenLimit = slot.token!.maxSessionCount
  if (tokenLimit === CK_EFFECTIVELY_INFINITE || UNAVAILABLE.includes(tokenLimit)) return requested
  return Math.min(requested, tokenLimit)
}
