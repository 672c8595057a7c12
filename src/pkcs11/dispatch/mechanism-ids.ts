/**
 * Numbers for mechanisms, so a batch names each request's mechanism with one number: the same
 * type with the same parameters gets the same id, in the order first seen. Workers keep the same
 * list, sent to them once.
 */
import type { Mechanism } from '../binding.js'

export class MechanismIds {
  /** Every mechanism so far; its id is its index. */
  readonly list: Mechanism[] = []
  readonly #ids = new Map<string, number>()

  idOf(mechanism: Mechanism): number {
    const shape = mechanism.parameter === undefined ? String(mechanism.mechanism) : JSON.stringify(mechanism)
    let id = this.#ids.get(shape)
    if (id === undefined) {
      id = this.list.push(mechanism) - 1
      this.#ids.set(shape, id)
    }
    return id
  }
}
