/**
 * Bytes as a Buffer for pkcs11js. An empty one is a zero-length view into a real buffer: pkcs11js
 * passes a NULL pointer for an empty Buffer, which SoftHSM refuses (CKR_ARGUMENTS_BAD), while an
 * empty message is a valid thing to sign.
 */
export function bytes(data: Uint8Array): Buffer {
  return data.byteLength === 0 ? Buffer.alloc(1).subarray(0, 0) : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}
