/**
 * Object search, attributes and their cache, on the lookup session. Some HSMs allow only a few
 * C_FindObjects a second, so searches that found something are cached for a short while
 * (`searchCacheMs`) and attributes for as long as the token stays; a search that found nothing is
 * never cached (another application may make the object a moment later). A search for private
 * objects that finds nothing makes sure the token is still logged in first: a token logged out by
 * someone else answers as if it held no keys.
 */
import { C, callSync, isTokenError, sendable, type Handle, type PKCS11, type Template } from './binding.js'
import { COPY_LABEL, IN_USE, underCopyLock } from './dispatch/session-copies.js'
import { ObjectCache } from './object-cache.js'

/** What the objects need of the token: the lookup session, and the login to restore. */
export interface ObjectAccess {
  readonly native: PKCS11
  withSession<T>(use: (session: Handle) => T): Promise<T>
  /** Logs in again if the token lost the login; true when it did. */
  restoreLogin(session: Handle): boolean
}

const PRIVATE_CLASSES = new Set<unknown>([C.CKO_PRIVATE_KEY, C.CKO_SECRET_KEY])

export class TokenObjects {
  readonly #access: ObjectAccess
  readonly #cache: ObjectCache
  readonly #keyCopies: Int32Array

  /** `keyCopies`: the module's words of the signing sessions' copies of keys, which no search finds (session-copies.ts). */
  constructor(access: ObjectAccess, searchCacheMs: number, keyCopies: Int32Array) {
    this.#access = access
    this.#cache = new ObjectCache(searchCacheMs)
    this.#keyCopies = keyCopies
  }

  /** Handles of the objects matching `template`. */
  find(template: Template): Promise<Handle[]> {
    const cached = this.#cache.found(template)
    if (cached) return Promise.resolve(cached)
    return this.#access.withSession((session) => {
      let handles = this.#search(session, template)
      if (handles.length === 0 && searchesPrivate(template) && this.#access.restoreLogin(session)) {
        this.#cache.clear()
        handles = this.#search(session, template)
      }
      return handles.length > 0 ? this.#cache.remember(template, handles) : handles
    })
  }

  /**
   * The values of the attributes `types` of one object; an attribute the object lacks or keeps
   * secret comes back undefined. Values are cached: read only public, unchanging attributes here.
   */
  async attributes(handle: Handle, types: number[]): Promise<Map<number, Buffer | undefined>> {
    return this.#cache.attributes(handle, types) ?? this.#cache.rememberAttributes(handle, await this.read(handle, types))
  }

  /** Like `attributes`, never cached: for values that change or must not linger (key material). */
  read(handle: Handle, types: number[]): Promise<Map<number, Buffer | undefined>> {
    return this.#access.withSession((session) => {
      const read = (wanted: number[]) =>
        callSync('C_GetAttributeValue', () =>
          this.#access.native.C_GetAttributeValue(
            session,
            handle,
            wanted.map((type) => ({ type })),
          ),
        )
      try {
        return new Map(read(types).map(({ type, value }) => [type, value]))
      } catch (error) {
        // One missing or sensitive attribute fails the whole call: read them one by one.
        if (!isTokenError(error, 'CKR_ATTRIBUTE_TYPE_INVALID', 'CKR_ATTRIBUTE_SENSITIVE')) throw error
        return new Map(
          types.map((type) => {
            try {
              return [type, read([type])[0].value]
            } catch (inner) {
              if (isTokenError(inner, 'CKR_ATTRIBUTE_TYPE_INVALID', 'CKR_ATTRIBUTE_SENSITIVE')) return [type, undefined]
              throw inner
            }
          }),
        )
      }
    })
  }

  /** Objects were made or destroyed (through us): searches may find something else now. */
  changed(handle?: Handle): void {
    if (handle) this.#cache.forget(handle)
    else this.#cache.forgetSearches()
  }

  /** The token came back, or a handle went stale: handles may mean other objects now. */
  clear(): void {
    this.#cache.clear()
  }

  /** The objects matching `template`, but the copies of keys (see session-copies.ts). */
  #search(session: Handle, template: Template): Handle[] {
    if (Atomics.load(this.#keyCopies, IN_USE) === 0) return this.#searchNow(session, template)
    // Never while a copy is being made: it would be found under the key's own id and label.
    return underCopyLock(this.#keyCopies, () => {
      if (!mayFindCopies(template)) return this.#searchNow(session, template)
      // The copies first: one destroyed before the search is in neither answer, one after it in both.
      const copies = new Set(this.#searchNow(session, [...template, { type: C.CKA_LABEL, value: COPY_LABEL }]).map((handle) => handle.toString('hex')))
      return this.#searchNow(session, template).filter((handle) => !copies.has(handle.toString('hex')))
    })
  }

  #searchNow(session: Handle, template: Template): Handle[] {
    const native = this.#access.native
    callSync('C_FindObjectsInit', () => native.C_FindObjectsInit(session, sendable(template)))
    const handles: Handle[] = []
    try {
      for (let batch; (batch = callSync('C_FindObjects', () => native.C_FindObjects(session, 100))).length > 0;) handles.push(...batch)
    } finally {
      try {
        native.C_FindObjectsFinal(session)
      } catch {
        // What was found stands; a search left open is ended by the next C_FindObjectsInit's failure, if ever.
      }
    }
    return handles
  }
}

/** A search that does not pin an id or a label (the copies have their own) may find keys, copies among them. */
function mayFindCopies(template: Template): boolean {
  return searchesPrivate(template) && !template.some(({ type }) => type === C.CKA_ID || type === C.CKA_LABEL)
}

function searchesPrivate(template: Template): boolean {
  const cls = template.find(({ type }) => type === C.CKA_CLASS)?.value
  return cls === undefined || PRIVATE_CLASSES.has(cls)
}
