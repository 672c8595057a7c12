/**
 * A SubtleCrypto that sends operations on token keys to the token and everything else to Node's
 * own WebCrypto, unchanged. It serves every token at once: a key knows its token.
 */
import { webcrypto } from 'node:crypto'
import { canonicalName, toDictionary } from './algorithm.js'
import { SIGNATURE_ALGORITHMS } from './algorithms/index.js'
import type { SignatureAlgorithm } from './algorithms/signature-algorithm.js'
import { TokenCryptoKey } from './crypto-key.js'
import { invalidAccess, notSupported } from './errors.js'

const node = webcrypto.subtle
const SIGNATURE_NAMES = [...SIGNATURE_ALGORITHMS.keys()]

function isTokenKey(value: unknown): value is TokenCryptoKey {
  return TokenCryptoKey.objectOf(value) !== undefined
}

/** The algorithm object's `public` member (ECDH / X25519 peer key), which may be a token key. */
function publicMember(algorithm: unknown): unknown {
  return algorithm !== null && typeof algorithm === 'object' ? (algorithm as { public?: unknown }).public : undefined
}

function signatureAlgorithm(algorithm: unknown) {
  const normalized = toDictionary(algorithm)
  const provider = SIGNATURE_ALGORITHMS.get(canonicalName(normalized.name, SIGNATURE_NAMES)) as SignatureAlgorithm
  return { provider, normalized: provider.normalize({ ...normalized, name: provider.name }) }
}

function notYet(operation: string): never {
  throw notSupported(`${operation} with a token key is not supported by this version`)
}

/**
 * Routes each call by its keys. Errors are rejections, of the types the WebCrypto spec names.
 *
 * @example
 * const subtle = new RoutingSubtleCrypto()
 * await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, tokenKey, data) // on the token
 * await subtle.digest('SHA-256', data)                                  // Node's WebCrypto
 */
export class RoutingSubtleCrypto {
  async sign(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    if (!isTokenKey(key)) return node.sign(algorithm, key, data)
    const { provider, normalized } = signatureAlgorithm(algorithm)
    return provider.sign(normalized, key, data)
  }

  async verify(algorithm: AlgorithmIdentifier, key: CryptoKey, signature: BufferSource, data: BufferSource): Promise<boolean> {
    if (!isTokenKey(key)) return node.verify(algorithm, key, signature, data)
    const { provider, normalized } = signatureAlgorithm(algorithm)
    return provider.verify(normalized, key, signature, data)
  }

  async exportKey(format: KeyFormat, key: CryptoKey): Promise<ArrayBuffer | JsonWebKey> {
    if (!isTokenKey(key)) return node.exportKey(format as 'raw', key)
    if (!['raw', 'pkcs8', 'spki', 'jwk'].includes(format)) throw new TypeError(`unknown key format "${String(format)}"`)
    throw invalidAccess('the key is not extractable: it never leaves the token')
  }

  async encrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    if (!isTokenKey(key)) return node.encrypt(algorithm, key, data)
    return notYet('encrypt')
  }

  async decrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    if (!isTokenKey(key)) return node.decrypt(algorithm, key, data)
    return notYet('decrypt')
  }

  async deriveBits(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, length: number): Promise<ArrayBuffer> {
    if (!isTokenKey(baseKey) && !isTokenKey(publicMember(algorithm))) return node.deriveBits(algorithm, baseKey, length)
    return notYet('deriveBits')
  }

  async deriveKey(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, derivedKeyType: AlgorithmIdentifier, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    if (!isTokenKey(baseKey) && !isTokenKey(publicMember(algorithm))) return node.deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages)
    return notYet('deriveKey')
  }

  async wrapKey(format: KeyFormat, key: CryptoKey, wrappingKey: CryptoKey, wrapAlgorithm: AlgorithmIdentifier): Promise<ArrayBuffer> {
    if (!isTokenKey(key) && !isTokenKey(wrappingKey)) return node.wrapKey(format, key, wrappingKey, wrapAlgorithm)
    if (isTokenKey(key)) throw invalidAccess('the key is not extractable: it never leaves the token')
    return notYet('wrapKey')
  }

  async unwrapKey(format: KeyFormat, wrappedKey: BufferSource, unwrappingKey: CryptoKey, unwrapAlgorithm: AlgorithmIdentifier,
    unwrappedKeyAlgorithm: AlgorithmIdentifier, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    if (!isTokenKey(unwrappingKey)) {
      return node.unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages)
    }
    return notYet('unwrapKey')
  }

  digest(algorithm: AlgorithmIdentifier, data: BufferSource): Promise<ArrayBuffer> {
    return node.digest(algorithm, data)
  }

  generateKey(...args: Parameters<SubtleCrypto['generateKey']>): ReturnType<SubtleCrypto['generateKey']> {
    return node.generateKey(...args)
  }

  importKey(...args: Parameters<SubtleCrypto['importKey']>): Promise<CryptoKey> {
    return node.importKey(...args)
  }

  get [Symbol.toStringTag](): string {
    return 'SubtleCrypto'
  }
}

/** One instance serves every token. */
export const routingSubtle = new RoutingSubtleCrypto() as unknown as SubtleCrypto
