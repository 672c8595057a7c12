/**
 * One token, opened and logged in: the token layer's face to the rest of the library. It speaks
 * PKCS#11 (handles, mechanisms, attributes) and hides modules, sessions, login, the signing
 * dispatch, and recovery when the token fails or goes away.
 */
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConfigurationError, KeyNotFoundError, TokenError } from '../errors.js'
import { C, callAsync, callSync, isTokenError, type Handle, type Mechanism, type Template } from './binding.js'
import type { Operation } from './dispatch/protocol.js'
import type { Dispatcher } from './dispatch/dispatcher.js'
import { ThreadPoolDispatcher } from './dispatch/thread-pool.js'
import { WorkerPool } from './dispatch/worker-pool.js'
import { backoff, remedyFor } from './failures.js'
import type { CallOptions, Signer } from './signer.js'
import { Pkcs11Module } from './module.js'
import { ObjectCache } from './object-cache.js'
import { SessionPool } from './session-pool.js'
import { describeSlots, selectSlot, type SlotDescription, type TokenSelector } from './slots.js'

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

const DEFAULT_MAX_SESSIONS = 8
const DEFAULT_TIMEOUT_MS = 30_000
const DEFAULT_MAX_QUEUE = 10_000
const CKF_LOGIN_REQUIRED = 0x4
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
  readonly #objects = new ObjectCache()
  readonly #timeoutMs: number
  #slot: SlotDescription
  #pin: string | undefined
  /** Counts reconnections: a KeyRef found in an older generation is looked up again. */
  #generation = 0
  #reconnecting: Promise<void> | undefined
  /** Callers waiting for the token to come back: the search keeps the process alive while there are any. */
  #waiting = 0
  /** A replica set is counting on the token to come back: the search goes on with nobody waiting. */
  #searchAlways = false
  /** What made the token go away, for the error of a caller who waited in vain. */
  #lastFailure: TokenError | undefined
  /** The token refused the PIN on a new login: every call fails with this, and no login is tried again. */
  #refused: Error | undefined
  #closed = false

  private constructor(module: Pkcs11Module, slot: SlotDescription, pool: SessionPool, options: TokenOptions) {
    this.#module = module
    this.#slot = slot
    this.#pool = pool
    this.#pin = options.pin
    this.#timeoutMs = options.timeout ?? DEFAULT_TIMEOUT_MS
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
    const module = Pkcs11Module.acquire(options.library, options.libraryParameters)
    let pool: SessionPool | undefined
    try {
      const slot = selectSlot(module.native, options.token)
      // One session serves lookups and changes (rare, after start-up); the rest sign.
      const limit = sessionLimit(slot, options.maxSessions)
      const maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE
      const generation = () => module.generation
      pool = new SessionPool(module.native, slot.slot, 1, generation)
      const token = new Token(module, slot, pool, options)
      token.#login(true)
      token.#workers = await WorkerPool.start({ library: module.path, slot: slot.slot, minWorkers: availableParallelism(), maxWorkers: Math.max(1, limit - 1), maxQueue })
        ?? new ThreadPoolDispatcher(module.native, slot.slot, Math.max(1, limit - 1), maxQueue, generation)
      return token
    } catch (error) {
      void pool?.close()
      module.release()
      throw error
    }
  }

  get closed(): boolean {
    return this.#closed
  }

  /** The slot and token, as found at open (or when the token came back). */
  get slot(): SlotDescription {
    return this.#slot
  }

  /** A reference to the key object `handle`, which `template` finds again after a reconnection. */
  keyRef(handle: Handle, template: Template): KeyRef {
    return new KeyRef(template, handle, this.#generation)
  }

  /** False while the token is away (being reconnected), refused the PIN, or is closed. */
  get available(): boolean {
    return !this.#reconnecting && !this.#refused && !this.#closed
  }

  /** The key `key` as a Signer, alone or as a member of a ReplicaSet. */
  signer(key: KeyRef): Signer {
    const isAvailable = () => this.available
    return {
      get available() { return isAvailable() },
      hasMechanism: (mechanism) => this.hasMechanism(mechanism),
      sign: (mechanism, data, outputLength, options) => this.sign(key, mechanism, data, outputLength, options),
      verify: (mechanism, data, signature, options) => this.verify(key, mechanism, data, signature, options),
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
   * Signs `data` with the key on the token, on a signing worker. `keyPin` is sent with a
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
   * Runs an operation that is safe to repeat: a failure that a new session, a new login or the
   * token's return can cure is cured and the operation tried once more, all within the deadline.
   */
  async #run(key: KeyRef, operation: Operation, options: CallOptions): Promise<Uint8Array | boolean> {
    const timeoutMs = options.timeout ?? this.#timeoutMs
    const deadline = performance.now() + timeoutMs
    for (let attempt = 0; ; attempt++) {
      if (this.#refused) throw this.#refused
      if (this.#reconnecting) {
        if (options.failFast) throw this.#notBack(0)
        await this.#awaitReconnection(deadline, timeoutMs, options.signal)
      }
      try {
        // The handle of the current generation is known: no lookup, no await, on the signing path.
        const handle = key.generation === this.#generation ? key.handle : await this.#findAgain(key)
        return await this.#workers.run(handle, operation, { deadline, timeoutMs, signal: options.signal })
      } catch (error) {
        const remedy = remedyFor(error)
        if (!remedy || attempt > 0 || this.#closed) throw error
        if (remedy === 'login') this.#relogin(error as TokenError)
        if (remedy === 'refind') {
          key.generation = -1
          this.#objects.clear()
        }
        if (remedy === 'reconnect') {
          this.#startReconnecting(error as TokenError)
          if (options.failFast) {
            this.#searchAlways = true
            throw error
          }
        }
      }
    }
  }

  /** Looks the key up again (the token came back, or its handle went stale) and remembers the new handle. */
  async #findAgain(key: KeyRef): Promise<Handle> {
    const generation = this.#generation
    const [handle] = await this.findObjects(key.template)
    if (!handle) throw new KeyNotFoundError(`the key is no longer on token "${this.#slot.token!.label}"`)
    key.handle = handle
    key.generation = generation
    return handle
  }

  /** Waits for the token to come back, until the caller's deadline or signal. */
  #awaitReconnection(deadline: number, timeoutMs: number, signal: AbortSignal | undefined): Promise<void> {
    this.#waiting++
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason)
      // A ref'd timer: a caller who waits keeps the process alive, as any pending I/O does.
      const expiry = setTimeout(() => reject(this.#notBack(timeoutMs)), Math.max(0, deadline - performance.now()))
      const onAbort = () => reject(signal!.reason)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#reconnecting!.then(resolve, resolve).finally(() => {
        clearTimeout(expiry)
        signal?.removeEventListener('abort', onAbort)
      })
    }).finally(() => { this.#waiting-- })
  }

  /** The error of a caller whose deadline passed while the token was away: it names what made it go. */
  #notBack(timeoutMs: number): TokenError {
    const { code = 'CKR_DEVICE_REMOVED', returnValue = C.CKR_DEVICE_REMOVED, function: fn = 'C_Sign' } = this.#lastFailure ?? {}
    return new TokenError(code, returnValue, fn, timeoutMs > 0 ? `the token did not come back within ${timeoutMs} ms` : 'the token is away')
  }

  #startReconnecting(failure: TokenError): void {
    this.#lastFailure = failure
    this.#reconnecting ??= this.#reconnect().finally(() => { this.#reconnecting = undefined })
  }

  /** Runs `use` on the lookup session; a failure that says the token went away starts the search for it. */
  async #lookup<T>(use: (session: Handle) => Promise<T> | T): Promise<T> {
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
    if (remedyFor(error) === 'reconnect' && !this.#closed) {
      this.#searchAlways = true
      this.#startReconnecting(error as TokenError)
    }
    return error
  }

  /**
   * Finds the token again (same serial and label, in whatever slot), opens fresh sessions and logs in
   * again, with growing pauses; handles are looked up anew afterwards.
   */
  async #reconnect(): Promise<void> {
    const { serial, label } = this.#slot.token!
    // The caller who saw the failure starts waiting right after this begins: give it a turn.
    await sleep(0)
    for (let attempt = 0; !this.#closed && !this.#refused && (this.#waiting > 0 || this.#searchAlways); attempt++) {
      await sleep(backoff(attempt), undefined, { ref: this.#waiting > 0 })
      if (this.#closed) return
      const seen = this.#module.generation
      try {
        const slots = describeSlots(this.#module.native)
        // No slot at all: a module that connects once, at C_Initialize (p11-kit's client), and did so
        // while its server was away. Initialize it again; a device's own module keeps its slots.
        if (slots.length === 0) this.#module.reinitialize(seen)
        const slot = slots.find((s) => s.token?.serial === serial && s.token.label === label)
        if (!slot) continue
        // A token that was only unwell for a moment keeps its sessions (and the session objects they made).
        if (slot.slotId !== this.#slot.slotId || !this.#pool.stillValid()) {
          this.#pool.reset(slot.slot)
          this.#workers.retarget(slot.slot)
        }
        this.#slot = slot
        this.#login(false)
        this.#objects.clear()
        this.#generation++
        return
      } catch (error) {
        if (this.#refused) return
        // Not back yet (or half back): try again after the pause, remembering what the token said.
        if (error instanceof TokenError) this.#lastFailure = error
        // A module that lost its device (or its server) may need initializing again to see it back.
        if (isTokenError(error, 'CKR_DEVICE_ERROR', 'CKR_CRYPTOKI_NOT_INITIALIZED', 'CKR_GENERAL_ERROR')) {
          try {
            this.#module.reinitialize(seen)
          } catch (failure) {
            if (failure instanceof TokenError) this.#lastFailure = failure
          }
        }
      }
    }
  }

  /** The token says the user is not logged in (it lost the login): log in again, once, now. */
  #relogin(failure: TokenError): void {
    if (this.#pin === undefined) throw failure
    this.#login(false)
  }

  /** Generates a key pair on the token (thread pool); returns the two handles. */
  generateKeyPair(mechanism: Mechanism, publicTemplate: Template, privateTemplate: Template): Promise<{ publicKey: Handle, privateKey: Handle }> {
    return this.#changeObjects((session, native) =>
      callAsync('C_GenerateKeyPair', [], () => native.C_GenerateKeyPairAsync(session, mechanism, publicTemplate, privateTemplate)))
  }

  /** Generates a secret key on the token (thread pool). */
  generateKey(mechanism: Mechanism, template: Template): Promise<Handle> {
    return this.#changeObjects((session, native) =>
      callAsync('C_GenerateKey', [], () => native.C_GenerateKeyAsync(session, mechanism, template)))
  }

  /** Creates an object (key, certificate) from its attributes. */
  createObject(template: Template): Promise<Handle> {
    return this.#changeObjects((session, native) => callSync('C_CreateObject', () => native.C_CreateObject(session, template)))
  }

  /** Sets attributes of an object (CKA_ID, CKA_LABEL ...). */
  setAttributes(handle: Handle, template: Template): Promise<void> {
    this.#objects.forget(handle)
    return this.#changeObjects((session, native) => callSync('C_SetAttributeValue', () => native.C_SetAttributeValue(session, handle, template)))
  }

  /** Destroys an object. */
  destroyObject(handle: Handle): Promise<void> {
    this.#objects.forget(handle)
    return this.#changeObjects((session, native) => callSync('C_DestroyObject', () => native.C_DestroyObject(session, handle)))
  }

  /** Fills `target` from the token's random number generator (synchronous, as WebCrypto's is). */
  generateRandom(target: Buffer): void {
    try {
      this.#pool.withSessionSync((session) => {
        callSync('C_GenerateRandom', () => this.#module.native.C_GenerateRandom(session, target))
      })
    } catch (error) {
      throw this.#noticed(error)
    }
  }

  /** Handles of the objects matching `template`; cached until objects are created or destroyed. */
  findObjects(template: Template): Promise<Handle[]> {
    const cached = this.#objects.found(template)
    if (cached) return Promise.resolve(cached)
    return this.#lookup((session) => {
      const native = this.#module.native
      callSync('C_FindObjectsInit', () => native.C_FindObjectsInit(session, template))
      try {
        const handles: Handle[] = []
        for (let batch; (batch = callSync('C_FindObjects', () => native.C_FindObjects(session, 100))).length > 0;) {
          handles.push(...batch)
        }
        return this.#objects.remember(template, handles)
      } finally {
        native.C_FindObjectsFinal(session)
      }
    })
  }

  /**
   * The values of the attributes `types` of one object; an attribute the object lacks or keeps
   * secret comes back undefined. Values are cached: read only public, unchanging attributes here.
   */
  async getAttributes(handle: Handle, types: number[]): Promise<Map<number, Buffer | undefined>> {
    return this.#objects.attributes(handle, types)
      ?? this.#objects.rememberAttributes(handle, await this.readAttributes(handle, types))
  }

  /** Like getAttributes, never cached: for values that change or must not linger (key material). */
  readAttributes(handle: Handle, types: number[]): Promise<Map<number, Buffer | undefined>> {
    return this.#lookup((session) => {
      const native = this.#module.native
      const read = (wanted: number[]) => callSync('C_GetAttributeValue', () =>
        native.C_GetAttributeValue(session, handle, wanted.map((type) => ({ type }))))
      let values: Map<number, Buffer | undefined>
      try {
        values = new Map(read(types).map(({ type, value }) => [type, value]))
      } catch (error) {
        // One missing or sensitive attribute fails the whole call: read them one by one.
        if (!isTokenError(error, 'CKR_ATTRIBUTE_TYPE_INVALID', 'CKR_ATTRIBUTE_SENSITIVE')) throw error
        values = new Map(types.map((type) => {
          try {
            return [type, read([type])[0].value]
          } catch (inner) {
            if (isTokenError(inner, 'CKR_ATTRIBUTE_TYPE_INVALID', 'CKR_ATTRIBUTE_SENSITIVE')) return [type, undefined]
            throw inner
          }
        }))
      }
      return values
    })
  }

  /**
   * Closes every session once the operations under way have finished; closing the last session of
   * the process on this token logs the user out (PKCS#11 ties the login to the sessions).
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#pin = undefined
    await this.#workers.close()
    await this.#pool.close()
    this.#module.release()
  }

  /** Runs a change of the token's objects; searches are forgotten after it, whatever happened. */
  async #changeObjects<T>(change: (session: Handle, native: Pkcs11Module['native']) => Promise<T> | T): Promise<T> {
    try {
      return await this.#lookup((session) => change(session, this.#module.native))
    } finally {
      this.#objects.forgetSearches()
    }
  }

  /**
   * One C_Login with the user PIN. A PIN the token refuses is dropped at once and never tried
   * again: devices lock after a few wrong tries.
   */
  #login(first: boolean): void {
    const pin = this.#pin
    if (pin === undefined) {
      const required = (this.#slot.token!.flags & CKF_LOGIN_REQUIRED) !== 0
      if (required && first) throw new ConfigurationError(`token "${this.#slot.token!.label}" requires a PIN (pin, pinFile, PKCS11_PIN or PKCS11_PIN_FILE)`)
      return
    }
    this.#pool.withSessionSync((session) => {
      try {
        callSync('C_Login', () => this.#module.native.C_Login(session, C.CKU_USER, pin))
      } catch (error) {
        // Another user of this token in the process logged in already: the login state is shared.
        if (isTokenError(error, 'CKR_USER_ALREADY_LOGGED_IN')) return
        if (isTokenError(error, 'CKR_PIN_INCORRECT', 'CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE')) {
          this.#pin = undefined
          if (!first) this.#refused = error as Error
        }
        throw error
      }
    })
  }
}

function sessionLimit(slot: SlotDescription, requested = DEFAULT_MAX_SESSIONS): number {
  const tokenLimit = slot.token!.maxSessionCount
  if (tokenLimit === CK_EFFECTIVELY_INFINITE || UNAVAILABLE.includes(tokenLimit)) return requested
  return Math.min(requested, tokenLimit)
}
