/**
 * Reading an extractable, non-sensitive token key back as a JWK: only for keys the caller made
 * extractable on purpose. Values are read uncached, so key material does not linger in caches.
 */
import { C } from '../pkcs11/binding.js'
import type { Token } from '../pkcs11/token.js'
import type { KeyDescription } from './key-description.js'
import { findPublicPart } from './public-key.js'

const RSA_PARTS: Array<[keyof JsonWebKey, number]> = [
  ['n', C.CKA_MODULUS],
  ['e', C.CKA_PUBLIC_EXPONENT],
  ['d', C.CKA_PRIVATE_EXPONENT],
  ['p', C.CKA_PRIME_1],
  ['q', C.CKA_PRIME_2],
  ['dp', C.CKA_EXPONENT_1],
  ['dq', C.CKA_EXPONENT_2],
  ['qi', C.CKA_COEFFICIENT],
]

export async function exportKeyJwk(token: Token, key: KeyDescription): Promise<JsonWebKey> {
  if (key.kty === 'RSA') {
    const values = await token.readAttributes(
      key.handle,
      RSA_PARTS.map(([, type]) => type),
    )
    return Object.fromEntries([['kty', 'RSA'], ...RSA_PARTS.map(([name, type]) => [name, strip(values.get(type)).toString('base64url')])])
  }
  const value = (await token.readAttributes(key.handle, [C.CKA_VALUE])).get(C.CKA_VALUE)
  if (!value) throw new DOMException('the token does not reveal this key', 'OperationError')
  if (key.kty === 'oct') return { kty: 'oct', k: value.toString('base64url') }
  const { jwk } = await findPublicPart(token, key)
  if (!jwk) throw new DOMException('the public half of this key is not on the token', 'OperationError')
  return { ...jwk, d: value.toString('base64url') }
}

function strip(value: Buffer | undefined): Buffer {
  if (!value) throw new DOMException('the token does not reveal this key', 'OperationError')
  let i = 0
  while (i < value.length - 1 && value[i] === 0) i++
  return value.subarray(i)
}
