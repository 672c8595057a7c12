/**
 * encrypt, decrypt, deriveBits, deriveKey, wrapKey and unwrapKey for calls that involve a token
 * key: the specification's steps around the token algorithms (normalization, the key to import
 * or export), so that the router only says which calls come here.
 */
import { webcrypto } from 'node:crypto'
import { copyBytes } from '../lib/buffer.js'
import { canonicalName, hashLength, hashName, toDictionary, type NormalizedAlgorithm } from './algorithm.js'
import { AES_KW, AGREEMENT_ALGORITHMS, CIPHER_ALGORITHMS } from './algorithms/index.js'
import { TokenCryptoKey } from './crypto-key.js'
import { dataError, invalidAccess } from './errors.js'

const node = webcrypto.subtle
const CIPHER_NAMES = [...CIPHER_ALGORITHMS.keys()]
const AGREEMENT_NAMES = [...AGREEMENT_ALGORITHMS.keys()]
const WRAP_NAMES = [...CIPHER_NAMES, AES_KW.name]

function cipher(algorithm: unknown) {
  const input = toDictionary(algorithm)
  const provider = CIPHER_ALGORITHMS.get(canonicalName(input.name, CIPHER_NAMES))!
  return { provider, normalized: provider.normalize({ ...input, name: provider.name }) }
}

function tokenKey(key: unknown, what: string): TokenCryptoKey {
  if (!TokenCryptoKey.objectOf(key)) throw new TypeError(`${what} must be a CryptoKey`)
  return key as TokenCryptoKey
}

/** subtle.encrypt with a token key. */
export async function encrypt(algorithm: unknown, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
  const { provider, normalized } = cipher(algorithm)
  return provider.encrypt(normalized, tokenKey(key, 'key'), copyBytes(data))
}

/** subtle.decrypt with a token key. */
export async function decrypt(algorithm: unknown, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
  const { provider, normalized } = cipher(algorithm)
  return provider.decrypt(normalized, tokenKey(key, 'key'), copyBytes(data))
}

/** subtle.deriveBits with a token private key (ECDH, X25519). */
export async function deriveBits(algorithm: unknown, baseKey: CryptoKey, length: number | null | undefined): Promise<ArrayBuffer> {
  const input = toDictionary(algorithm)
  const provider = AGREEMENT_ALGORITHMS.get(canonicalName(input.name, AGREEMENT_NAMES))!
  const bits = length === undefined || length === null ? null : Number(length)
  if (bits !== null && (!Number.isInteger(bits) || bits < 0)) throw new TypeError('length must be an unsigned long or null')
  return provider.deriveBits(provider.normalize({ ...input, name: provider.name }), tokenKey(baseKey, 'baseKey'), bits)
}

/** subtle.deriveKey with a token private key: the bits the derived key needs, imported by Node. */
export async function deriveKey(algorithm: unknown, baseKey: CryptoKey, derivedKeyType: unknown, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey> {
  const type = toDictionary(derivedKeyType)
  const bits = await deriveBits(algorithm, baseKey, keyLength(type))
  return node.importKey('raw', bits, type as Algorithm, extractable, usages)
}

/** The spec's "get key length" of a derived key's algorithm: AES and HMAC keys have one, KDF keys (HKDF, PBKDF2) take all the bits. */
function keyLength(type: NormalizedAlgorithm): number | null {
  const name = type.name.toUpperCase()
  if (name.startsWith('AES-')) {
    if (![128, 192, 256].includes(type.length as number)) throw new DOMException('AES length must be 128, 192 or 256', 'OperationError')
    return type.length as number
  }
  if (name === 'HMAC') {
    if (type.length !== undefined) return Number(type.length)
    return hashLength(hashName(type.hash)) > 32 ? 1024 : 512
  }
  return null
}

/** What the router does to export and import keys (token keys included). */
export interface KeyPorter {
  exportKey(format: KeyFormat, key: CryptoKey): Promise<ArrayBuffer | JsonWebKey>
  importKey(format: KeyFormat, keyData: BufferSource | JsonWebKey, algorithm: AlgorithmIdentifier, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey>
}

/**
 * subtle.wrapKey where the key or the wrapping key is a token key. A token key that is not
 * extractable cannot be wrapped (InvalidAccessError); an extractable one is read and wrapped.
 */
export async function wrapKey(format: KeyFormat, key: CryptoKey, wrappingKey: CryptoKey, wrapAlgorithm: unknown, porter: KeyPorter): Promise<ArrayBuffer> {
  const input = toDictionary(wrapAlgorithm)
  const name = canonicalName(input.name, WRAP_NAMES)
  if (!key.extractable) throw invalidAccess('the key is not extractable')
  const exported = await porter.exportKey(format, key)
  if (!TokenCryptoKey.objectOf(wrappingKey)) {
    // A Node wrapping key, and an extractable token key: Node wraps a copy of its value.
    const copy = await node.importKey(format as 'raw', exported as ArrayBuffer, key.algorithm as Algorithm, true, key.usages)
    return node.wrapKey(format, copy, wrappingKey, wrapAlgorithm as Algorithm)
  }
  const keyBytes = format === 'jwk' ? Buffer.from(JSON.stringify(exported)) : Buffer.from(exported as ArrayBuffer)
  if (name === AES_KW.name) return AES_KW.wrap({ ...input, name }, wrappingKey as TokenCryptoKey, keyBytes)
  const { provider, normalized } = cipher(input)
  return provider.encrypt(normalized, wrappingKey as TokenCryptoKey, keyBytes, 'wrapKey')
}

/**
 * subtle.unwrapKey with a token unwrapping key: the key value is unwrapped (or decrypted) on the
 * token and imported by `porter`: on `hsm.subtle` into the token, on the routing global by Node
 * (jose exports the key it unwraps).
 */
export async function unwrapKey(
  format: KeyFormat,
  wrappedKey: BufferSource,
  unwrappingKey: CryptoKey,
  unwrapAlgorithm: unknown,
  unwrappedKeyAlgorithm: AlgorithmIdentifier,
  extractable: boolean,
  usages: KeyUsage[],
  porter: KeyPorter,
): Promise<CryptoKey> {
  const input = toDictionary(unwrapAlgorithm)
  const name = canonicalName(input.name, WRAP_NAMES)
  const wrapped = copyBytes(wrappedKey, 'wrappedKey')
  const key = tokenKey(unwrappingKey, 'unwrappingKey')
  let value: Buffer
  if (name === AES_KW.name) {
    value = Buffer.from(await AES_KW.unwrap({ ...input, name }, key, wrapped))
  } else {
    const { provider, normalized } = cipher(input)
    value = Buffer.from(await provider.decrypt(normalized, key, wrapped, 'unwrapKey'))
  }
  try {
    return await porter.importKey(
      format,
      format === 'jwk' ? parseJwk(value) : new Uint8Array(value.buffer as ArrayBuffer, value.byteOffset, value.length),
      unwrappedKeyAlgorithm,
      extractable,
      usages,
    )
  } finally {
    value.fill(0)
  }
}

function parseJwk(value: Buffer): JsonWebKey {
  try {
    return JSON.parse(value.toString('utf8')) as JsonWebKey
  } catch {
    throw dataError('the unwrapped key is not a JSON Web Key')
  }
}
