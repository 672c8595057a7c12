/**
 * AES-KW (JOSE A128KW ..) with a token AES key: RFC 3394 through C_WrapKey / C_UnwrapKey
 * (CKM_AES_KEY_WRAP; SoftHSM has no AES-KW through C_Encrypt). The key to wrap becomes a session
 * object for the moment of C_WrapKey; the unwrapped key is read and destroyed at once.
 */
import { C } from '../../pkcs11/binding.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import type { TokenCryptoKey } from '../crypto-key.js'
import { KeyOperationAlgorithm, operationFailed } from './key-operation-algorithm.js'

export class AesKw extends KeyOperationAlgorithm {
  readonly name = 'AES-KW'
  protected readonly mechanism = C.CKM_AES_KEY_WRAP

  /** Wraps the key value `keyBytes` (RFC 3394: a multiple of 8 bytes, 16 at least). */
  wrap(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, keyBytes: Buffer): Promise<ArrayBuffer> {
    const object = this.check(algorithm, key, 'wrapKey', 'secret')
    if (keyBytes.length < 16 || keyBytes.length % 8 !== 0) throw operationFailed('AES-KW wraps a multiple of 8 bytes, 16 at least')
    return this.run(object, { op: 'wrap', mechanism: { mechanism: this.mechanism }, data: keyBytes, outputLength: keyBytes.length + 8 }, algorithm)
  }

  /** The key value wrapped in `wrapped`. */
  unwrap(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, wrapped: Buffer): Promise<ArrayBuffer> {
    const object = this.check(algorithm, key, 'unwrapKey', 'secret')
    if (wrapped.length < 24 || wrapped.length % 8 !== 0) throw operationFailed('the data is not an AES-KW wrapped key')
    return this.run(object, { op: 'unwrap', mechanism: { mechanism: this.mechanism }, data: wrapped, outputLength: wrapped.length - 8 }, algorithm)
  }
}
