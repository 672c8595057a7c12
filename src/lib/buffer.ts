/** Byte helpers shared by every layer. */

/**
 * A private copy of a BufferSource, as WebCrypto takes its inputs: the caller may change its
 * buffer while the token works on ours. Anything else is a TypeError.
 */
export function copyBytes(data: unknown, what = 'data'): Buffer {
  if (ArrayBuffer.isView(data)) return Buffer.from(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
  if (data instanceof ArrayBuffer) return Buffer.from(new Uint8Array(data))
  throw new TypeError(`${what} must be an ArrayBuffer or an ArrayBuffer view`)
}

/** An ArrayBuffer holding exactly `bytes`, as WebCrypto returns results. */
export function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  const out = new ArrayBuffer(bytes.length)
  new Uint8Array(out).set(bytes)
  return out
}
