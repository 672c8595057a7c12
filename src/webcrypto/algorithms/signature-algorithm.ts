/**
 * The base of every token signature algorithm. It does the WebCrypto specification's checks once
 * (algorithm name, key usage) and turns token failures into OperationError; each algorithm only
 * says which mechanism signs and what bytes it takes.
 */
import { createHash } from 'node:crypto'
import type { Mechanism } from '../../pkcs11/binding.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import { copyBytes, toArrayBuffer } from '../../lib/buffer.js'
import type { HashName, NormalizedAlgorithm } from '../algorithm.js'
import { TokenCryptoKey } from '../crypto-key.js'
import { invalidAccess, operationError } from '../errors.js'
import { KeyPinRequiredError } from '../../errors.js'

/** What the token is asked to do: sign `input` with `mechanism`. */
export interface SignatureStep {
  mechanism: Mechanism
  input: Buffer
}

export abstract class SignatureAlgorithm {
  /** The WebCrypto name, e.g. 'RSASSA-PKCS1-v1_5'. */
  abstract readonly name: string

  /**
   * Normalizes the algorithm's own members (TypeError / NotSupportedError as the spec says).
   * Most signature algorithms have none.
   */
  normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    return algorithm
  }

  /** True when `token` has a mechanism for this algorithm with `hash` (for the key's own hash). */
  abstract isSupportedBy(token: Mechanisms, hash?: HashName): boolean

  /** The mechanism and input that make this algorithm's signature with `key` on `token`. */
  protected abstract step(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: Buffer, token: Mechanisms): SignatureStep

  async sign(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    const bytes = copyBytes(data)
    const object = this.#check(algorithm, key, 'sign')
    const { mechanism, input } = this.step(algorithm, key, bytes, object.signer)
    const keyPin = typeof algorithm.keyPin === 'string' ? algorithm.keyPin : object.keyPin
    if (object.alwaysAuthenticate && keyPin === undefined) throw operationError(new KeyPinRequiredError())
    try {
      return toArrayBuffer(await object.signer.sign(mechanism, input, object.outputLength, { ...callOptions(algorithm), keyPin: object.alwaysAuthenticate ? keyPin : undefined }))
    } catch (error) {
      throw failure(error)
    }
  }

  async verify(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, signature: BufferSource, data: BufferSource): Promise<boolean> {
    const sig = copyBytes(signature, 'signature')
    const bytes = copyBytes(data)
    const object = this.#check(algorithm, key, 'verify')
    const { mechanism, input } = this.step(algorithm, key, bytes, object.signer)
    try {
      return await object.signer.verify(mechanism, input, sig, callOptions(algorithm))
    } catch (error) {
      throw failure(error)
    }
  }

  #check(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, usage: KeyUsage) {
    if (algorithm.name !== key.algorithm.name) {
      throw invalidAccess(`the key is for ${key.algorithm.name}, not ${algorithm.name}`)
    }
    if (!key.usages.includes(usage)) throw invalidAccess(`the key's usages do not include "${usage}"`)
    return TokenCryptoKey.objectOf(key)!
  }
}

/**
 * The caller's `signal` (an AbortSignal) and `timeout` (ms), extra members of the algorithm
 * dictionary, which WebCrypto ignores.
 */
function callOptions(algorithm: NormalizedAlgorithm): { signal?: AbortSignal, timeout?: number } {
  const { signal, timeout } = algorithm
  return {
    signal: signal instanceof AbortSignal ? signal : undefined,
    timeout: typeof timeout === 'number' && timeout > 0 ? timeout : undefined,
  }
}

/** An aborted call rejects with its signal's reason, as fetch does; every other failure is an OperationError. */
function failure(error: unknown): unknown {
  return error instanceof DOMException && (error.name === 'AbortError' || error.name === 'TimeoutError') ? error : operationError(error)
}

/** Hashes in software, for tokens that sign only a precomputed digest (CKM_ECDSA, CKM_RSA_PKCS). */
export function digest(hash: HashName, data: Buffer): Buffer {
  return createHash(hash.replace('-', '').toLowerCase()).update(data).digest()
}

/** The key's own hash, as RSA and HMAC keys carry it. */
export function keyHash(key: CryptoKey): HashName {
  return (key.algorithm as KeyAlgorithm & { hash: { name: HashName } }).hash.name
}
