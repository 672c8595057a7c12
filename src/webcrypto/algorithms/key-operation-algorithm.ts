/**
 * The base of the token algorithms that decrypt, encrypt, derive, wrap and unwrap. It does the
 * WebCrypto specification's checks that every one of them does (algorithm name, key type, usage),
 * sends the operation to the key's token, and answers every input the token refuses with one
 * OperationError and one fixed message: whoever sends a ciphertext learns nothing of which check
 * failed (no padding oracle), and the token is not asked again.
 */
import { InputRejectedError, KeyPinRequiredError } from '../../errors.js'
import type { KeyOperation } from '../../pkcs11/dispatch/protocol.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import { copyBytes, toArrayBuffer } from '../../lib/buffer.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import { TokenCryptoKey, type TokenObject } from '../crypto-key.js'
import { invalidAccess, operationError } from '../errors.js'
import { callOptions, failure } from './signature-algorithm.js'

/** The message of every refused input, whatever the token said. */
export const REJECTED = 'the operation failed for an operation-specific reason'

export abstract class KeyOperationAlgorithm {
  /** The WebCrypto name, e.g. 'RSA-OAEP'. */
  abstract readonly name: string
  /** The mechanism (CKM_) it needs of the token. */
  protected abstract readonly mechanism: number

  /** True when `token` lists the mechanism (whether it does a hash is found out with a key: see the key store). */
  isSupportedBy(token: Mechanisms): boolean {
    return token.hasMechanism(this.mechanism)
  }

  /** Normalizes the algorithm's own members (TypeError / OperationError as the spec says). */
  normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    return algorithm
  }

  /** The token object behind `key`, once the name, type and usage fit. */
  protected check(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, usage: KeyUsage, type: KeyType): TokenObject {
    if (algorithm.name !== key.algorithm.name) throw invalidAccess(`the key is for ${key.algorithm.name}, not ${algorithm.name}`)
    if (key.type !== type) throw invalidAccess(`${usage} needs a ${type} key, not a ${key.type} one`)
    if (!key.usages.includes(usage)) throw invalidAccess(`the key's usages do not include "${usage}"`)
    return TokenCryptoKey.objectOf(key)!
  }

  /** Runs `operation` on the key's token. */
  protected async run(object: TokenObject, operation: KeyOperation, algorithm: NormalizedAlgorithm): Promise<ArrayBuffer> {
    if (object.alwaysAuthenticate && object.keyPin === undefined) throw operationError(new KeyPinRequiredError())
    try {
      return toArrayBuffer(await object.signer.operate(operation, { ...callOptions(algorithm), keyPin: object.alwaysAuthenticate ? object.keyPin : undefined }))
    } catch (error) {
      throw rejection(error)
    }
  }
}

/** A refused input as one fixed OperationError (no cause: the token's code stays unsaid); anything else as signing says it. */
export function rejection(error: unknown): unknown {
  return error instanceof InputRejectedError ? new DOMException(REJECTED, 'OperationError') : failure(error)
}

/** An algorithm that encrypts and decrypts (and wraps and unwraps by encrypting and decrypting, as the spec does). */
export abstract class CipherAlgorithm extends KeyOperationAlgorithm {
  /** The key type that encrypts and decrypts: 'secret' (AES), 'public' / 'private' (RSA-OAEP). */
  protected abstract readonly keyTypes: { encrypt: KeyType; decrypt: KeyType }

  /** The token operation for `data`, with its mechanism, call parameter and room for the result. */
  protected abstract operation(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, op: 'encrypt' | 'decrypt', data: Buffer): KeyOperation

  encrypt(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: Buffer, usage: KeyUsage = 'encrypt'): Promise<ArrayBuffer> {
    const object = this.check(algorithm, key, usage, this.keyTypes.encrypt)
    return this.run(object, this.operation(algorithm, key, 'encrypt', data), algorithm)
  }

  decrypt(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: Buffer, usage: KeyUsage = 'decrypt'): Promise<ArrayBuffer> {
    const object = this.check(algorithm, key, usage, this.keyTypes.decrypt)
    return this.run(object, this.operation(algorithm, key, 'decrypt', data), algorithm)
  }
}

/** An optional BufferSource member, copied; undefined when absent. */
export function optionalBytes(value: unknown, what: string): Buffer | undefined {
  return value === undefined ? undefined : copyBytes(value, what)
}

/** A required BufferSource member, copied. */
export function requiredBytes(value: unknown, what: string): Buffer {
  if (value === undefined) throw new TypeError(`${what} is required`)
  return copyBytes(value, what)
}

export function operationFailed(message: string): DOMException {
  return new DOMException(message, 'OperationError')
}
