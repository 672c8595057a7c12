/**
 * The base of every token signature algorithm. It does the WebCrypto specification's checks once
 * (algorithm name, key usage) and turns token failures into OperationError; each algorithm only
 * says which mechanism signs and what bytes it takes.
 */
import { hash as oneShotHash } from 'node:crypto'
import type { Mechanism } from '../../pkcs11/binding.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import { copyBytes, toArrayBuffer, viewBytes } from '../../lib/buffer.js'
import { NODE_HASHES, type HashName, type NormalizedAlgorithm } from '../algorithm.js'
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

  /**
   * The mechanism and input that make this algorithm's signature with `key` on `token`. `data` is
   * the caller's: an input that is not `data` itself (a digest of it) must be made at once.
   */
  protected abstract step(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: Buffer, token: Mechanisms): SignatureStep

  async sign(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: BufferSource): Promise<ArrayBuffer> {
    const view = viewBytes(data)
    const object = this.#check(algorithm, key, 'sign')
    const { mechanism, input } = this.#step(algorithm, key, view, object.signer)
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
    const view = viewBytes(data)
    const object = this.#check(algorithm, key, 'verify')
    const { mechanism, input } = this.#step(algorithm, key, view, object.signer)
    try {
      return await object.signer.verify(mechanism, input, sig, callOptions(algorithm))
    } catch (error) {
      throw failure(error)
    }
  }

  /** The step for the caller's bytes `view`, with a private copy of the input: the caller may change them once we return. */
  #step(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, view: Buffer, token: Mechanisms): SignatureStep {
    const step = this.step(algorithm, key, view, token)
    return step.input === view ? { mechanism: step.mechanism, input: copyBytes(view) } : step
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
export function callOptions(algorithm: NormalizedAlgorithm): { signal?: AbortSignal; timeout?: number } {
  const { signal, timeout } = algorithm
  return {
    signal: signal instanceof AbortSignal ? signal : undefined,
    timeout: typeof timeout === 'number' && timeout > 0 ? timeout : undefined,
  }
}

/** An aborted call rejects with its signal's reason, as fetch does; every other failure is an OperationError. */
export function failure(error: unknown): unknown {
  return error instanceof DOMException && (error.name === 'AbortError' || error.name === 'TimeoutError') ? error : operationError(error)
}

/**
 * Inputs from this size on are hashed here, where the algorithm allows it (RSA: the token signs
 * the digest, and the signature is the same), instead of being copied to the token: a copy of a
 * 64 MiB input, and the signing memory grown to hold several, cost more than hashing it.
 */
const LARGE_INPUT = 1 << 20

/** True when `data` is better hashed here than copied to the token. */
export function isLarge(data: Uint8Array): boolean {
  return data.byteLength >= LARGE_INPUT
}

/** Hashes in software, for tokens that sign only a precomputed digest (CKM_ECDSA, CKM_RSA_PKCS), and for large inputs. */
export function digest(hash: HashName, data: Buffer): Buffer {
  return oneShotHash(NODE_HASHES[hash], data, 'buffer')
}

/** The key's own hash, as RSA and HMAC keys carry it. */
export function keyHash(key: CryptoKey): HashName {
  return (key.algorithm as KeyAlgorithm & { hash: { name: HashName } }).hash.name
}
