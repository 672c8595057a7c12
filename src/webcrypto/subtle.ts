/**
 * A SubtleCrypto that sends operations on token keys to the token and everything else to Node's
 * own WebCrypto, unchanged. It serves every token at once: a key knows its token.
 */
import { webcrypto } from 'node:crypto'
import { canonicalName, publicMember, toDictionary } from './algorithm.js'
import { SIGNATURE_ALGORITHMS } from './algorithms/index.js'
import type { SignatureAlgorithm } from './algorithms/signature-algorithm.js'
import { isTokenKey, TokenCryptoKey } from './crypto-key.js'
import { asSpecError, invalidAccess } from './errors.js'
import * as tokenOperations from './token-operations.js'

const node = webcrypto.subtle
const SIGNATURE_NAMES = [...SIGNATURE_ALGORITHMS.keys()]

function signatureAlgorithm(algorithm: unknown) {
  const normalized = toDictionary(algorithm)
  const provider = SIGNATURE_ALGORITHMS.get(canonicalName(normalized.name, SIGNATURE_NAMES)) as SignatureAlgorithm
  return { provider, normalized: provider.normalize({ ...normalized, name: provider.name }) }
}

/** Rejects with `error` as the specification names it (see asSpecError). */
function rethrow(error: unknown): never {
  throw asSpecError(error)
}

/** Makes and imports keys on one token: what `generateKey` and `importKey` do on `hsm.subtle`. */
export interface KeyFactory {
  generateKey(algorithm: unknown, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey | CryptoKeyPair>
  importKey(format: KeyFormat, keyData: unknown, algorithm: unknown, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey>
}

/**
 * Routes each call by its keys. With a KeyFactory, new keys are made on its token; without
 * one (the global crypto), by Node. Errors are rejections, of the types the WebCrypto spec names.
 *
 * @example
 * const subtle = new RoutingSubtleCrypto()
 * await subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, tokenKey, data) // on the token
 * await subtle.digest('SHA-256', data)                                  // Node's WebCrypto
 */
export class RoutingSubtleCrypto {
  readonly #factory?: KeyFactory

  constructor(factory?: KeyFactory) {
    this.#factory = factory
  }

  async sign(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    if (!isTokenKey(key)) return node.sign(algorithm, key, data).catch(rethrow)
    const { provider, normalized } = signatureAlgorithm(algorithm)
    return provider.sign(normalized, key, data)
  }

  async verify(algorithm: AlgorithmIdentifier, key: CryptoKey, signature: BufferSource, data: BufferSource): Promise<boolean> {
    if (!isTokenKey(key)) return node.verify(algorithm, key, signature, data).catch(rethrow)
    const { provider, normalized } = signatureAlgorithm(algorithm)
    return provider.verify(normalized, key, signature, data)
  }

  async exportKey(format: KeyFormat, key: CryptoKey): Promise<ArrayBuffer | JsonWebKey> {
    if (!isTokenKey(key)) return node.exportKey(format as 'raw', key).catch(rethrow)
    if (!['raw', 'pkcs8', 'spki', 'jwk'].includes(format)) throw new TypeError(`unknown key format "${String(format)}"`)
    const { exportJwk } = TokenCryptoKey.objectOf(key)!
    if (!key.extractable || !exportJwk) throw invalidAccess('the key is not extractable: it never leaves the token')
    // An extractable token key: read it, then let Node write the format the caller asked for.
    const jwk = await exportJwk().catch(rethrow)
    const copy = await node.importKey('jwk', jwk, key.algorithm as Algorithm, true, key.usages)
    return format === 'jwk' ? { ...(await node.exportKey('jwk', copy)), key_ops: key.usages, ext: true } : node.exportKey(format as 'raw', copy)
  }

  async encrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    if (!isTokenKey(key)) return node.encrypt(algorithm, key, data).catch(rethrow)
    return tokenOperations.encrypt(algorithm, key, data).catch(rethrow)
  }

  async decrypt(algorithm: AlgorithmIdentifier, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    if (!isTokenKey(key)) return node.decrypt(algorithm, key, data).catch(rethrow)
    return tokenOperations.decrypt(algorithm, key, data).catch(rethrow)
  }

  async deriveBits(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, length?: number | null): Promise<ArrayBuffer> {
    if (!isTokenKey(baseKey) && !isTokenKey(publicMember(algorithm))) return node.deriveBits(algorithm, baseKey, length as number).catch(rethrow)
    return tokenOperations.deriveBits(algorithm, baseKey, length).catch(rethrow)
  }

  async deriveKey(algorithm: AlgorithmIdentifier, baseKey: CryptoKey, derivedKeyType: AlgorithmIdentifier, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    if (!isTokenKey(baseKey) && !isTokenKey(publicMember(algorithm))) return node.deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages).catch(rethrow)
    return tokenOperations.deriveKey(algorithm, baseKey, derivedKeyType, extractable, keyUsages).catch(rethrow)
  }

  async wrapKey(format: KeyFormat, key: CryptoKey, wrappingKey: CryptoKey, wrapAlgorithm: AlgorithmIdentifier): Promise<ArrayBuffer> {
    if (!isTokenKey(key) && !isTokenKey(wrappingKey)) return node.wrapKey(format, key, wrappingKey, wrapAlgorithm).catch(rethrow)
    return tokenOperations.wrapKey(format, key, wrappingKey, wrapAlgorithm, this).catch(rethrow)
  }

  async unwrapKey(
    format: KeyFormat,
    wrappedKey: BufferSource,
    unwrappingKey: CryptoKey,
    unwrapAlgorithm: AlgorithmIdentifier,
    unwrappedKeyAlgorithm: AlgorithmIdentifier,
    extractable: boolean,
    keyUsages: KeyUsage[],
  ): Promise<CryptoKey> {
    if (!isTokenKey(unwrappingKey)) {
      return node.unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages).catch(rethrow)
    }
    return tokenOperations.unwrapKey(format, wrappedKey, unwrappingKey, unwrapAlgorithm, unwrappedKeyAlgorithm, extractable, keyUsages, this).catch(rethrow)
  }

  digest(algorithm: AlgorithmIdentifier, data: BufferSource): Promise<ArrayBuffer> {
    return node.digest(algorithm, data).catch(rethrow)
  }

  async generateKey(algorithm: AlgorithmIdentifier, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey | CryptoKeyPair> {
    if (this.#factory) return this.#factory.generateKey(algorithm, extractable, keyUsages).catch(rethrow)
    return node.generateKey(algorithm, extractable, keyUsages).catch(rethrow)
  }

  async importKey(format: KeyFormat, keyData: BufferSource | JsonWebKey, algorithm: AlgorithmIdentifier, extractable: boolean, keyUsages: KeyUsage[]): Promise<CryptoKey> {
    if (this.#factory) return this.#factory.importKey(format, keyData, algorithm, extractable, keyUsages).catch(rethrow)
    return node.importKey(format as 'raw', keyData as BufferSource, algorithm, extractable, keyUsages).catch(rethrow)
  }

  get [Symbol.toStringTag](): string {
    return 'SubtleCrypto'
  }
}

/** The router of the global crypto: it serves every token's keys, and makes keys with Node. */
export const routingSubtle = new RoutingSubtleCrypto() as unknown as SubtleCrypto
