/** A request waiting for a signing worker: what to do, by when, and whom to answer. */
import type { RunOptions } from './dispatcher.js'
import { parameterSize } from './call-parameter.js'
import type { Operation } from './protocol.js'

export class Pending {
  settled = false

  constructor(
    /** Its mechanism table id, and its kind for service times (the operation with that mechanism). */
    readonly mechanismId: number,
    readonly kind: number,
    readonly key: Uint8Array,
    readonly operation: Operation,
    readonly options: RunOptions,
    readonly resolve: (value: Uint8Array | boolean) => void,
    readonly reject: (error: Error) => void,
  ) {}

  /** Bytes it takes in a batch's memory: the key handle, the input, its parameter, and the signature to verify or room for the result. */
  get size(): number {
    const { operation } = this
    return (
      this.key.byteLength + operation.data.byteLength + parameterSize(operation.parameter) + (operation.op === 'verify' ? operation.signature.byteLength : operation.outputLength)
    )
  }

  /** Settles once: with the result, or an error. A late second answer (after a timeout) is dropped. */
  answer(outcome: Uint8Array | boolean | Error): void {
    if (this.settled) return
    this.settled = true
    if (outcome instanceof Error) this.reject(outcome)
    else this.resolve(outcome)
  }
}
