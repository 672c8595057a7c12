/**
 * A request's own parameter bytes (see CallParameter) in the batch memory: each member as a 4-byte
 * length and its bytes, in the order the mechanism table entry names them.
 */
import type { Mechanism } from '../binding.js'
import { bytes } from './bytes.js'
import type { CallParameter, MechanismEntry } from './protocol.js'

/** Bytes `parameter` takes in a batch. */
export function parameterSize(parameter: CallParameter | undefined): number {
  return parameter?.reduce((sum, [, value]) => sum + 4 + value.byteLength, 0) ?? 0
}

/** Writes `parameter` into `target` at `offset`; returns the bytes written. */
export function writeParameter(target: Uint8Array, offset: number, parameter: CallParameter | undefined): number {
  if (!parameter) return 0
  const view = new DataView(target.buffer, target.byteOffset)
  let at = offset
  for (const [, value] of parameter) {
    view.setUint32(at, value.byteLength, true)
    target.set(value, at + 4)
    at += 4 + value.byteLength
  }
  return at - offset
}

/** The member values of `count` members written at the start of `source`. */
export function readParameter(source: Buffer, count: number): Buffer[] {
  const values: Buffer[] = []
  for (let at = 0; values.length < count;) {
    const length = source.readUInt32LE(at)
    values.push(source.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  return values
}

/**
 * The whole mechanism: the entry's fixed part with the request's members in place. Every member
 * is a Buffer (an empty one a zero-length view, as inputs are): pkcs11js aborts the process when a
 * parameter fails to convert.
 */
export function withCallParameter({ mechanism, fields }: MechanismEntry, values: readonly Uint8Array[]): Mechanism {
  if (fields.length === 0) return mechanism
  if (fields[0] === '') return { mechanism: mechanism.mechanism, parameter: bytes(values[0]) }
  const parameter: Record<string, unknown> = { ...(mechanism.parameter as object) }
  fields.forEach((name, i) => {
    parameter[name] = bytes(values[i])
    if (`${name}Bits` in parameter) parameter[`${name}Bits`] = values[i].byteLength * 8
  })
  return { mechanism: mechanism.mechanism, parameter: parameter as unknown as Mechanism['parameter'] }
}

/** The table entry of a request: its mechanism, and the names of its own members. */
export function entryOf(mechanism: Mechanism, parameter: CallParameter | undefined): MechanismEntry {
  return { mechanism, fields: parameter?.map(([name]) => name) ?? [] }
}
