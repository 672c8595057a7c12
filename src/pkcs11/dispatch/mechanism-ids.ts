/**
 * Numbers for mechanisms, so a batch names each request's mechanism with one number: the same
 * type with the same fixed parameters (and the same names of per-call members) gets the same id, in
 * the order first seen. Workers keep the same list, sent to them once.
 */
import type { MechanismEntry } from './protocol.js'

export class MechanismIds {
  /** Every mechanism so far; its id is its index. */
  readonly list: MechanismEntry[] = []
  readonly #ids = new Map<string, number>()

  idOf(entry: MechanismEntry): number {
    const { mechanism, fields } = entry
    const shape = mechanism.parameter === undefined && fields.length === 0 ? String(mechanism.mechanism) : JSON.stringify([mechanism, fields])
    let id = this.#ids.get(shape)
    if (id === undefined) {
      id = this.list.push(entry) - 1
      this.#ids.set(shape, id)
    }
    return id
  }
}
