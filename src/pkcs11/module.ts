/**
 * A loaded PKCS#11 library. C_Initialize is process-wide, so one Pkcs11Module exists per library
 * file (its device and inode: a symlink or a hard link is the same library) and is finalized only
 * when its last user releases it, with no thread inside it.
 */
import { existsSync, statSync } from 'node:fs'
import type pkcs11js from 'pkcs11js'
import { ConfigurationError, ModuleLoadError, TokenError } from '../errors.js'
import { C, NativeModule, callSync, isTokenError, type PKCS11 } from './binding.js'
import { SHARED_WORDS } from './dispatch/session-copies.js'
import { ModuleActivity } from './module-activity.js'

const loaded = new Map<string, Pkcs11Module>()

export class Pkcs11Module {
  readonly path: string
  readonly native: PKCS11
  /** C_Initialize's pReserved (NSS's softokn needs its database there); may hold a password: never shown. */
  readonly #libraryParameters: string | undefined
  /** Calls of other threads under way; held back while the module is finalized. */
  readonly activity = new ModuleActivity()
  /**
   * The words (shared memory) of the signing sessions' copies of keys, one set for every token and
   * instance of the module, which see each other's session objects: the count of changes to
   * objects, the lock that copies and searches take, and whether any token signs with copies
   * (session-copies.ts).
   */
  readonly keyCopies = new Int32Array(new SharedArrayBuffer(SHARED_WORDS * Int32Array.BYTES_PER_ELEMENT))
  /**
   * False when someone else in the process initialized the library (and holds it still): then they
   * finalize it, and they alone initialize it again.
   */
  #initializedHere: boolean
  /** The library file's device and inode. */
  readonly fileId: string
  /** What each user does after the module was initialized again: its sessions and login are gone. */
  readonly #users = new Set<() => void>()
  #generation = 0
  #reinitializing: Promise<void> | undefined
  #finalizing: Promise<void> | undefined

  private constructor(path: string, fileId: string, native: PKCS11, initializedHere: boolean, libraryParameters: string | undefined) {
    this.#libraryParameters = libraryParameters
    this.path = path
    this.fileId = fileId
    this.native = native
    this.#initializedHere = initializedHere
  }

  /**
   * Loads and initializes the library at `path`, or shares the instance already loaded from the
   * same file. `onReinitialized` runs whenever any user of the module initialized it again.
   * `libraryParameters` go to C_Initialize; a module already initialized with others is refused.
   *
   * @example
   * const module = Pkcs11Module.acquire('/usr/lib/softhsm/libsofthsm2.so', () => {})
   * try { console.log(module.native.C_GetInfo()) } finally { await module.release(user) }
   */
  static async acquire(path: string, onReinitialized: () => void, libraryParameters?: string): Promise<Pkcs11Module> {
    if (!existsSync(path)) throw new ModuleLoadError(`PKCS#11 module not found: ${path}`)
    const { dev, ino } = statSync(path)
    const fileId = `${dev}:${ino}`
    let module = loaded.get(fileId)
    // The last user is finalizing it: a new load initializes it again afterwards.
    if (module && module.#finalizing) {
      await module.#finalizing
      module = loaded.get(fileId)
    }
    if (!module) {
      const { native, initializedHere } = load(path, libraryParameters)
      module = new Pkcs11Module(path, fileId, native, initializedHere, libraryParameters)
      loaded.set(fileId, module)
    } else if (module.#libraryParameters !== libraryParameters) {
      throw new ConfigurationError(`${path} is already initialized in this process with other library parameters`)
    }
    module.#users.add(onReinitialized)
    return module
  }

  /** Counts reinitializations, so that several tokens of the module that saw one failure reinitialize once. */
  get generation(): number {
    return this.#generation
  }

  /**
   * C_Finalize and C_Initialize again, unless someone did since `seen`: some modules (p11-kit's
   * client, after its server went away) answer CKR_DEVICE_ERROR to everything until then. New calls
   * wait and the ones under way finish first; afterwards every session of the module is gone, and
   * every user of the module is told so (it logs in again and reopens its sessions). A library
   * another user of the process initialized is not finalized: its sessions, and its threads inside
   * the module, are not ours to end (SoftHSM frees a session closed under a call). It is only
   * initialized again once they have finalized it (CKR_CRYPTOKI_NOT_INITIALIZED), and is ours then.
   */
  async reinitialize(seen: number): Promise<void> {
    // Released (or being released) by its last user: nothing to initialize for.
    if (seen !== this.#generation || this.#finalizing || this.#users.size === 0) return
    this.#reinitializing ??= this.activity.exclusive(() => this.#initializeAgain()).finally(() => (this.#reinitializing = undefined))
    await this.#reinitializing
  }

  /** Runs with no call inside the module; users are told only when its sessions are gone. */
  #initializeAgain(): void {
    // Ours only; CKR_CRYPTOKI_NOT_INITIALIZED: someone finalized it already.
    const finalized = this.#initializedHere && finalize(this.native)
    let initialized: boolean
    try {
      initialized = initialize(this.native, this.#libraryParameters)
    } catch (error) {
      this.#sessionsGone() // not initialized now: no session survived
      throw error
    }
    // ALREADY_INITIALIZED after our C_Finalize: someone else initialized it meanwhile, and it is theirs.
    this.#initializedHere = initialized || (this.#initializedHere && !finalized)
    // Neither: still initialized by someone else, nothing changed, every session is still valid.
    if (finalized || initialized) this.#sessionsGone()
  }

  #sessionsGone(): void {
    this.#generation++
    // Before any held call goes on: sessions are forgotten and logins restored first.
    for (const user of this.#users) user()
  }

  /** Gives back one use; the last one finalizes (once no thread is inside) and unloads the library. */
  async release(onReinitialized: () => void): Promise<void> {
    if (!this.#users.delete(onReinitialized) || this.#users.size > 0) return
    this.#finalizing = this.activity.exclusive(() => {
      loaded.delete(this.fileId)
      try {
        if (this.#initializedHere) this.native.C_Finalize()
      } finally {
        this.native.close()
      }
    })
    await this.#finalizing
  }
}

/**
 * C_Initialize; false when someone else in the process initialized the library already (and it is theirs).
 * Without CKF_OS_LOCKING_OK, SoftHSM (and others) turn their locking off and thread-pool calls race.
 */
function initialize(native: PKCS11, libraryParameters: string | undefined): boolean {
  const args: pkcs11js.InitializationOptions = libraryParameters === undefined ? { flags: C.CKF_OS_LOCKING_OK } : { flags: C.CKF_OS_LOCKING_OK, libraryParameters }
  try {
    callSync('C_Initialize', () => native.C_Initialize(args))
    return true
  } catch (error) {
    if (isTokenError(error, 'CKR_CRYPTOKI_ALREADY_INITIALIZED')) return false
    throw error
  }
}

/** C_Finalize; true once the library is not initialized (now, or already: CKR_CRYPTOKI_NOT_INITIALIZED). */
function finalize(native: PKCS11): boolean {
  try {
    callSync('C_Finalize', () => native.C_Finalize())
    return true
  } catch (error) {
    // The connection is gone, say: initializing again is what matters.
    return isTokenError(error, 'CKR_CRYPTOKI_NOT_INITIALIZED')
  }
}

function load(path: string, libraryParameters: string | undefined): { native: PKCS11; initializedHere: boolean } {
  const native = new NativeModule()
  try {
    native.load(path)
  } catch (cause) {
    throw new ModuleLoadError(`cannot load PKCS#11 module ${path}: ${(cause as Error).message}`, { cause })
  }
  try {
    return { native, initializedHere: initialize(native, libraryParameters) }
  } catch (error) {
    native.close()
    // NSS's softokn answers so when its database parameters are missing.
    if (isTokenError(error, 'CKR_ARGUMENTS_BAD') && libraryParameters === undefined) {
      throw new TokenError(error.code, error.returnValue, error.function, "the module may need libraryParameters, as NSS's softokn does")
    }
    throw error
  }
}
