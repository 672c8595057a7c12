/**
 * A loaded PKCS#11 library. C_Initialize is process-wide, so one Pkcs11Module exists per library
 * path and is finalized only when its last user releases it.
 */
import { existsSync, realpathSync } from 'node:fs'
import { ConfigurationError, ModuleLoadError } from '../errors.js'
import type pkcs11js from 'pkcs11js'
import { C, NativeModule, callSync, isTokenError, type PKCS11 } from './binding.js'

const loaded = new Map<string, Pkcs11Module>()

export class Pkcs11Module {
  readonly path: string
  readonly native: PKCS11
  /** C_Initialize's pReserved (NSS's softokn needs its database there); may hold a password: never shown. */
  readonly #libraryParameters: string | undefined
  /** False when someone else in the process initialized the library: then they finalize it. */
  readonly #initializedHere: boolean
  #users = 0
  #generation = 0

  private constructor(path: string, native: PKCS11, initializedHere: boolean, libraryParameters: string | undefined) {
    this.path = path
    this.native = native
    this.#libraryParameters = libraryParameters
    this.#initializedHere = initializedHere
  }

  /**
   * Loads and initializes the library at `path`, or shares the instance already loaded.
   *
   * @example
   * const module = Pkcs11Module.acquire('/usr/lib/softhsm/libsofthsm2.so')
   * try { console.log(module.native.C_GetInfo()) } finally { module.release() }
   */
  static acquire(requested: string, libraryParameters?: string): Pkcs11Module {
    if (!existsSync(requested)) throw new ModuleLoadError(`PKCS#11 module not found: ${requested}`)
    // One library reached by two paths (a symlink) is still one C_Initialize.
    const path = realpathSync(requested)
    let module = loaded.get(path)
    if (!module) {
      const { native, initializedHere } = load(path, libraryParameters)
      module = new Pkcs11Module(path, native, initializedHere, libraryParameters)
      loaded.set(path, module)
    } else if (module.#libraryParameters !== libraryParameters) {
      throw new ConfigurationError(`${path} is already initialized in this process with other library parameters`)
    }
    module.#users++
    return module
  }

  /** Counts reinitializations, so that several tokens of the module that saw one failure reinitialize once. */
  get generation(): number {
    return this.#generation
  }

  /**
   * C_Finalize and C_Initialize again, unless someone did since `seen`: some modules (p11-kit's
   * client, after its server went away) answer CKR_DEVICE_ERROR to everything until then. Every
   * session of the module is gone afterwards.
   */
  reinitialize(seen: number): void {
    if (seen !== this.#generation) return
    this.#generation++
    try {
      this.native.C_Finalize()
    } catch {
      // already finalized, or the connection is gone: initializing again is what matters
    }
    try {
      callSync('C_Initialize', () => this.native.C_Initialize(initializeArgs(this.#libraryParameters)))
    } catch (error) {
      if (!isTokenError(error, 'CKR_CRYPTOKI_ALREADY_INITIALIZED')) throw error
    }
  }

  /** Gives back one use; the last one finalizes and unloads the library. */
  release(): void {
    if (--this.#users > 0) return
    loaded.delete(this.path)
    try {
      if (this.#initializedHere) this.native.C_Finalize()
    } finally {
      this.native.close()
    }
  }
}

/** Without CKF_OS_LOCKING_OK, SoftHSM (and others) turn their locking off and thread-pool calls race. */
function initializeArgs(libraryParameters: string | undefined): pkcs11js.InitializationOptions {
  return libraryParameters === undefined ? { flags: C.CKF_OS_LOCKING_OK } : { flags: C.CKF_OS_LOCKING_OK, libraryParameters }
}

function load(path: string, libraryParameters: string | undefined): { native: PKCS11, initializedHere: boolean } {
  const native = new NativeModule()
  try {
    native.load(path)
  } catch (cause) {
    throw new ModuleLoadError(`cannot load PKCS#11 module ${path}: ${(cause as Error).message}`, { cause })
  }
  try {
    callSync('C_Initialize', () => native.C_Initialize(initializeArgs(libraryParameters)))
    return { native, initializedHere: true }
  } catch (error) {
    if (isTokenError(error, 'CKR_CRYPTOKI_ALREADY_INITIALIZED')) return { native, initializedHere: false }
    native.close()
    throw error
  }
}
