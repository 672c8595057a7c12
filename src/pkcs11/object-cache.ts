/**
 * Object handles and attribute values, cached: some HSMs allow only a few C_FindObjects a second,
 * and a signature must not cost a lookup.
 */
import type { Handle, Template } from './binding.js'

export class ObjectCache {
  readonly #searches = new Map<string, Handle[]>()
  readonly #attributes = new Map<string, Map<number, Buffer | undefined>>()

  found(template: Template): Handle[] | undefined {
    return this.#searches.get(searchKey(template))
  }

  remember(template: Template, handles: Handle[]): Handle[] {
    this.#searches.set(searchKey(template), handles)
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
