/**
 * Copies, as session objects, of the keys one session signs with. SoftHSM checks a token object's
 * file at every use of it, under a lock per token: threads of one process that sign with a token key
 * take turns (two threads made 0.57 of what two processes make, ES256), and every signature pays the
 * check. A session object has no file: with a copy each (C_CopyObject, CKA_TOKEN false) two threads
 * sign as fast as two processes, and one thread 20% faster. The copy keeps the key's attributes
 * (sensitive, not extractable, what it may do) but its id and label, lives inside the module as the key does, and goes
 * with the session: nothing is left on the token, whatever happens to the process.
 *
 * A copy may not outlive the key it copies: the ones made before this process changed or deleted an
 * object of the token (a count the token raises) are destroyed before the next signature, and none
 * is used past COPY_MAX_AGE_MS, so that a key deleted or changed by another application stops signing
 * here within that time. A key the module will not copy (CKA_COPYABLE false, no session objects,
 * a full store) is used as it is.
 */
import { performance } from 'node:perf_hooks'
import { C, sendable, type Handle, type PKCS11 } from '../binding.js'

/**
 * The words shared by the token and its signing sessions (an Int32Array over shared memory): the
 * count of the process's changes to the token's objects; a lock that every copy is made under and
 * every search of the token's takes, as SoftHSM makes a copy in steps (the object first, with the
 * key's own id and label; then the new ones) and a search at that moment would find the copy as the
 * key; and whether any token of the module signs with copies (until then searches pay neither).
 */
export const CHANGES = 0
const LOCK = 1
export const IN_USE = 2
export const SHARED_WORDS = 3

/**
 * Runs `run` under the copies' lock: a synchronous section, on any thread. A signing session holds
 * it for one C_CopyObject (tens of µs), the token for one search (two, when copies could match).
 */
export function underCopyLock<T>(words: Int32Array, run: () => T): T {
  while (Atomics.compareExchange(words, LOCK, 0, 1) !== 0) Atomics.wait(words, LOCK, 1, 10)
  try {
    return run()
  } finally {
    Atomics.store(words, LOCK, 0)
    Atomics.notify(words, LOCK)
  }
}

/** Which signing sessions sign with copies: on a software slot (no CKF_HW_SLOT), always, never. */
export const SESSION_KEY_COPIES = ['software', 'always', 'never'] as const
export type SessionKeyCopies = (typeof SESSION_KEY_COPIES)[number]

/** The most a copy is used before it is made again from the token's key. */
export const COPY_MAX_AGE_MS = 1000
/** Copies one session keeps at most; keys past them sign as they are. */
const MAX_COPIES = 64
/**
 * The label and id of every copy. Session objects are seen by every session of the process, the
 * token's lookups included: with an id and label of their own, no search by a key's id or label finds
 * a copy, and a search by class alone leaves out what a search for this label finds (token-objects.ts).
 */
export const COPY_LABEL = 'pkcs11-webcrypto session copy'
const SESSION_OBJECT = sendable([
  { type: C.CKA_TOKEN, value: false },
  { type: C.CKA_LABEL, value: COPY_LABEL },
  { type: C.CKA_ID, value: Buffer.from(COPY_LABEL) },
])

/** A key's copy in this session (undefined: the module would not make one), and when it was made. */
interface Copy {
  handle: Handle | undefined
  made: number
}

export class SessionCopies {
  readonly #shared: Int32Array
  #changesSeen: number
  readonly #copies = new Map<string, Copy>()
  readonly #afterFailure: () => void

  /**
   * `shared`: the words shared with the token (SHARED_WORDS); `afterFailure` runs after a call here
   * failed (the main thread empties its OpenSSL error queue).
   */
  constructor(shared: Int32Array, afterFailure: () => void = () => {}) {
    this.#shared = shared
    this.#changesSeen = Atomics.load(shared, CHANGES)
    this.#afterFailure = afterFailure
  }

  /** The copy of `key` on `session` to sign with, made now if need be; undefined: sign with `key`. */
  copyOf(native: PKCS11, session: Handle, key: Handle): Handle | undefined {
    const changes = Atomics.load(this.#shared, CHANGES)
    if (changes !== this.#changesSeen) {
      this.#destroyAll(native, session)
      this.#changesSeen = changes
    }
    const name = key.toString('latin1')
    const now = performance.now()
    const copy = this.#copies.get(name)
    if (copy && now - copy.made <= COPY_MAX_AGE_MS) return copy.handle
    if (copy) this.#destroy(native, session, name, copy)
    // Full: the copies of keys no longer signed with make room (else they would keep it for the session's life).
    if (this.#copies.size >= MAX_COPIES) for (const [old, expired] of this.#copies) if (now - expired.made > COPY_MAX_AGE_MS) this.#destroy(native, session, old, expired)
    if (this.#copies.size >= MAX_COPIES) return undefined
    let handle: Handle | undefined
    try {
      handle = underCopyLock(this.#shared, () => native.C_CopyObject(session, key, SESSION_OBJECT))
    } catch {
      this.#afterFailure()
    }
    this.#copies.set(name, { handle, made: now })
    return handle
  }

  /**
   * The copy of `key` was refused: its handle means nothing now (nor is it destroyed: the module may
   * give it to another object). Signs with the key until the copy is made again.
   */
  drop(key: Handle): void {
    this.#copies.set(key.toString('latin1'), { handle: undefined, made: performance.now() })
    this.#afterFailure()
  }

  /** The session is closed or forgotten: its copies went with it. */
  forget(): void {
    this.#copies.clear()
  }

  #destroyAll(native: PKCS11, session: Handle): void {
    for (const [name, copy] of this.#copies) this.#destroy(native, session, name, copy)
  }

  #destroy(native: PKCS11, session: Handle, name: string, copy: Copy): void {
    this.#copies.delete(name)
    if (!copy.handle) return
    try {
      native.C_DestroyObject(session, copy.handle)
    } catch {
      // Gone already (the session lost it): nothing is left to destroy.
      this.#afterFailure()
    }
  }
}
