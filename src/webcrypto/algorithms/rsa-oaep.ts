/**
 * RSA-OAEP (JOSE RSA-OAEP, RSA-OAEP-256 ..) decryption with a token private key: CKM_RSA_PKCS_OAEP,
 * with MGF1 and the hash of the key. Whether the token does a hash (SoftHSM 2.6.1: SHA-1 only)
 * and honours a label (SoftHSM ignores it) is found out when the key is handed out; a label the
 * token would ignore is refused.
 */
import { toArrayBuffer } from '../../lib/buffer.js'
import { C } from '../../pkcs11/binding.js'
import type { KeyOperation } from '../../pkcs11/dispatch/protocol.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import { TokenCryptoKey } from '../crypto-key.js'
import { notSupported } from '../errors.js'
import { CipherAlgorithm, REJECTED, optionalBytes } from './key-operation-algorithm.js'
import { oaepDecode } from './oaep-decoding.js'
import { BY_HASH } from './mechanisms.js'
import { keyHash } from './signature-algorithm.js'

export class RsaOaep extends CipherAlgorithm {
  readonly name = 'RSA-OAEP'
  protected readonly mechanism = C.CKM_RSA_PKCS_OAEP
  protected readonly keyTypes = { encrypt: 'public', decrypt: 'private' } as const

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    return { ...algorithm, label: optionalBytes(algorithm.label, 'RsaOaepParams.label') }
  }

  /**
   * With `oaepRaw` (an opt-in of keys.get): the token's CKM_RSA_X_509 makes the encoded block and
   * the OAEP decoding is done in software, with any hash and label, and one error for every failure.
   */
  override async decrypt(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: Buffer, usage: KeyUsage = 'decrypt'): Promise<ArrayBuffer> {
    if (!TokenCryptoKey.objectOf(key)?.oaepRaw) return super.decrypt(algorithm, key, data, usage)
    const object = this.check(algorithm, key, usage, 'private')
    const k = Math.ceil((key.algorithm as RsaHashedKeyAlgorithm).modulusLength / 8)
    const rejected = () => new DOMException(REJECTED, 'OperationError')
    if (data.length !== k) throw rejected()
    const block = Buffer.from(await this.run(object, { op: 'decrypt', mechanism: { mechanism: C.CKM_RSA_X_509 }, data, outputLength: k }, algorithm))
    // The raw result may come without its leading zero bytes.
    const em = block.length === k ? block : Buffer.concat([Buffer.alloc(Math.max(0, k - block.length)), block])
    const message = oaepDecode(em, k, keyHash(key), (algorithm.label as Buffer | undefined) ?? Buffer.alloc(0))
    block.fill(0)
    em.fill(0)
    if (!message) throw rejected()
    return toArrayBuffer(message)
  }

  protected operation(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, op: 'encrypt' | 'decrypt', data: Buffer): KeyOperation {
    const { digest, mgf1 } = BY_HASH[keyHash(key)]
    const label = algorithm.label as Buffer | undefined
    if (label?.length && !TokenCryptoKey.objectOf(key)!.oaepLabels) {
      throw notSupported('this token ignores RSA-OAEP labels: a ciphertext made with a label cannot be checked against it')
    }
    const parameter = { type: C.CK_PARAMS_RSA_OAEP, hashAlg: digest, mgf: mgf1, source: C.CKZ_DATA_SPECIFIED }
    return {
      op,
      mechanism: { mechanism: this.mechanism, parameter },
      parameter: label?.length ? [['sourceData', label]] : undefined,
      data,
      // The modulus's bytes: never less than the message (no CKR_BUFFER_TOO_SMALL).
      outputLength: Math.ceil((key.algorithm as RsaHashedKeyAlgorithm).modulusLength / 8),
    }
  }
}
