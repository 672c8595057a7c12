/**
 * One token, opened and logged in: the token layer's face to the rest of the library. It speaks
 * PKCS#11 (handles, mechanisms, attributes) and hides modules, sessions and login.
 */
import { ConfigurationError } from '../errors.js'
import { C, callAsync, callSync, isTokenError, type Handle, type Mechanism, type Template } from './binding.js'
import { Pkcs11Module } from './module.js'
import { ObjectCache } from './object-cache.js'
import { SessionPool } from './session-pool.js'
import { WorkerPool } from './dispatch/worker-pool.js'
import { availableParallelism } from 'node:os'
import { selectSlot, type SlotDescription, type TokenSelector } from './slots.js'

export interface TokenOptions {
  /** Path of the PKCS#11 library. */
  library: string
  /** Which token; when absent, the only token present. */
  token?: TokenSelector
  /** The user PIN; used for one C_Login and not kept. */
  pin?: string
  /**
   * Upper bound on the sessions opened (default 8; never above the token's own limit): one for
   * lookups, the others for signing workers, which grow past the number of cores only for a slow device.
   */
  maxSessions?: number
}

const DEFAULT_MAX_SESSIONS = 8
const CKF_LOGIN_REQUIRED = 0x4
const CK_EFFECTIVELY_INFINITE = 0
/** The largest CK_ULONG means "unavailable information". */
const UNAVAILABLE = [0xffffffff, Number.MAX_SAFE_INTEGER, 2 ** 64 - 1]

export class Token {
  readonly slot: SlotDescription
  /** The mechanisms (CKM_ numbers) the token lists; read once. */
  readonly mechanisms: ReadonlySet<number>
  readonly #module: Pkcs11Module
  /** Sessions for lookups, object changes and key generation. */
  readonly #pool: SessionPool
  /** Sessions, on their own threads, for signing and verifying. */
  readonly #workers: WorkerPool
  readonly #objects = new ObjectCache()
  #closed = false

  private constructor(module: Pkcs11Module, slot: SlotDescription, pool: SessionPool, workers: WorkerPool) {
    this.#module = module
    this.slot = slot
    this.#pool = pool
    this.#workers = workers
    this.mechanisms = new Set(callSync('C_GetMechanismList', () => module.native.C_GetMechanismList(slot.slot)))
  }

  /**
   * Loads the module (once per process), finds the token and logs in with one C_Login.
   * A wrong PIN fails at once with CKR_PIN_INCORRECT and is never retried.
   *
   * @example
   * const token = Token.open({ library: '/usr/lib/softhsm/libsofthsm2.so', token: { label: 'demo' }, pin: '1234' })
   */
  static open(options: TokenOptions): Token {
    const module = Pkcs11Module.acquire(options.library)
    let pool: SessionPool | undefined
    try {
      const slot = selectSlot(module.native, options.token)
      // One session serves lookups and changes (rare, after start-up); the rest sign, on workers.
      const limit = sessionLimit(slot, options.maxSessions)
      pool = new SessionPool(module.native, slot.slot, 1)
      const workers = new WorkerPool({ library: module.path, slot: slot.slot, minWorkers: availableParallelism(), maxWorkers: Math.max(1, limit - 1) })
      const token = new Token(module, slot, pool, workers)
      token.#login(options.pin)
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

  /** Sessions open now (the pool's and the signing workers'); for tests and diagnostics. */
  get openSessions(): number {
    return this.#pool.openSessions + this.#workers.openSessions
  }

  hasMechanism(mechanism: number): boolean {
    return this.mechanisms.has(mechanism)
  }

  /**
   * Signs `data` with the key `key` on the token, on a signing worker. `keyPin` is sent with a
   * CKU_CONTEXT_SPECIFIC login right after C_SignInit, for CKA_ALWAYS_AUTHENTICATE keys.
   */
  async sign(key: Handle, mechanism: Mechanism, data: Uint8Array, maxLength: number, keyPin?: string): Promise<Uint8Array> {
    return await this.#workers.run({ op: 'sign', key, mechanism, data, outputLength: maxLength, keyPin }) as Uint8Array
  }

  /** Verifies `signature` on the token; false for a wrong signature, an error for anything else. */
  async verify(key: Handle, mechanism: Mechanism, data: Buffer, signature: Buffer): Promise<boolean> {
    return await this.#workers.run({ op: 'verify', key, mechanism, data, signature }) as boolean
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
    this.#pool.withSessionSync((session) => {
      callSync('C_GenerateRandom', () => this.#module.native.C_GenerateRandom(session, target))
    })
  }

  /** Handles of the objects matching `template`; cached until objects are created or destroyed. */
  findObjects(template: Template): Promise<Handle[]> {
    const cached = this.#objects.found(template)
    if (cached) return Promise.resolve(cached)
    return this.#pool.withSession((session) => {
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
    return this.#pool.withSession((session) => {
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
    await this.#workers.close()
    await this.#pool.close()
    this.#module.release()
  }

  /** Runs a change of the token's objects; searches are forgotten after it, whatever happened. */
  async #changeObjects<T>(change: (session: Handle, native: Pkcs11Module['native']) => Promise<T> | T): Promise<T> {
    try {
      return await this.#pool.withSession((session) => change(session, this.#module.native))
    } finally {
      this.#objects.forgetSearches()
    }
  }

  #login(pin: string | undefined): void {
    const required = (this.slot.token!.flags & CKF_LOGIN_REQUIRED) !== 0
    if (pin === undefined) {
      if (required) throw new ConfigurationError(`token "${this.slot.token!.label}" requires a PIN (pin, pinFile, PKCS11_PIN or PKCS11_PIN_FILE)`)
      return
    }
    this.#pool.withSessionSync((session) => {
      try {
        callSync('C_Login', () => this.#module.native.C_Login(session, C.CKU_USER, pin))
      } catch (error) {
        // Another user of this token in the process logged in already: the login state is shared.
        if (!isTokenError(error, 'CKR_USER_ALREADY_LOGGED_IN')) throw error
      }
    })
  }
}

function sessionLimit(slot: SlotDescription, requested = DEFAULT_MAX_SESSIONS): number {
  const tokenLimit = slot.token!.maxSessionCount
  if (tokenLimit === CK_EFFECTIVELY_INFINITE || UNAVAILABLE.includes(tokenLimit)) return requested
  return Math.min(requested, tokenLimit)
}
