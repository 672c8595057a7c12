/**
 * Object handles and attribute values, cached: some HSMs allow only a few C_FindObjects a second,
 * and a signature must not cost a lookup. Searches are kept `searchMs` at most, so that objects
 * other applications make or remove show; attribute values of a handle stay until it goes stale.
 */
import type { Handle, Template } from './binding.js'

export class ObjectCache {
  readonly #searchMs: number
  readonly #searches = new Map<string, { handles: Handle[]; at: number }>()
  readonly #attributes = new Map<string, Map<number, Buffer | undefined>>()

  constructor(searchMs: number) {
    this.#searchMs = searchMs
  }

  found(template: Template): Handle[] | undefined {
    const key = searchKey(template)
    const entry = this.#searches.get(key)
    if (!entry) return undefined
    if (performance.now() - entry.at < this.#searchMs) return entry.handles
    this.#searches.delete(key)
    return undefined
  }

  remember(template: Template, handles: Handle[]): Handle[] {
    if (this.#searchMs > 0) this.#searches.set(searchKey(template), { handles, at: performance.now() })
    return handles
  }

  attributes(handle: Handle, types: number[]): Map<number, Buffer | undefined> | undefined {
    const known = this.#attributes.get(handle.toString('hex'))
    if (!known || !types.every((type) => known.has(type))) return undefined
    return new Map(types.map((type) => [type, known.get(type)]))
  }

  rememberAttributes(handle: Handle, values: Map<number, Buffer | undefined>): Map<number, Buffer | undefined> {
    const key = handle.toString('hex')
    const known = this.#attributes.get(key) ?? new Map()
    for (const [type, value] of values) known.set(type, value)
    this.#attributes.set(key, known)
    return values
  }

  /** The token came back: handles may mean other objects now. */
  clear(): void {
    this.#searches.clear()
    this.#attributes.clear()
  }

  /** Objects were created or destroyed: searches may find something else now. */
  forgetSearches(): void {
    this.#searches.clear()
  }

  forget(handle: Handle): void {
    this.#attributes.delete(handle.toString('hex'))
    this.#searches.clear()
  }
}

function searchKey(template: Template): string {
  return JSON.stringify(template.map(({ type, value }) => [type, Buffer.isBuffer(value) ? value.toString('hex') : value]))
}
