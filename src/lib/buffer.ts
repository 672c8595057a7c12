/** Byte helpers shared by every layer. */

/**
 * A private copy of a BufferSource, as WebCrypto takes its inputs: the caller may change its
 * buffer while the token works on ours. Anything else is a TypeError.
 */
export function copyBytes(data: unknown, what = 'data'): Buffer {
  return Buffer.from(viewBytes(data, what))
}

/**
 * The bytes of a BufferSource, not copied: for what is read at once (hashed, say). Anything else
 * is a TypeError, a view on a SharedArrayBuffer too (WebIDL's BufferSource is not [AllowShared]:
 * another thread could change the bytes while the token reads them; Node refuses them alike).
 */
export function viewBytes(data: unknown, what = 'data'): Buffer {
  if (ArrayBuffer.isView(data)) {
    if (!(data.buffer instanceof ArrayBuffer)) throw new TypeError(`${what} is a view on a SharedArrayBuffer, which is not allowed`)
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  }
  if (data instanceof ArrayBuffer) return Buffer.from(data)
  throw new TypeError(`${what} must be an ArrayBuffer or an ArrayBuffer view`)
}

/** An ArrayBuffer holding exactly `bytes`, as WebCrypto returns results (no copy when it is one already). */
export function toArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes.buffer
  return bytes.slice().buffer as ArrayBuffer
}
