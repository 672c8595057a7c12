/**
 * RSA-OAEP (JOSE RSA-OAEP, RSA-OAEP-256 ..) decryption with a token private key: CKM_RSA_PKCS_OAEP,
 * with MGF1 and the hash of the key. Whether the token does a hash (SoftHSM 2.6.1: SHA-1 only)
 * and honours a label (SoftHSM ignores it) is found out when the key is handed out; a label the
 * token would ignore is refused.
 */
import { C } from '../../pkcs11/binding.js'
import type { KeyOperation } from '../../pkcs11/dispatch/protocol.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import { TokenCryptoKey } from '../crypto-key.js'
import { notSupported } from '../errors.js'
import { CipherAlgorithm, optionalBytes } from './key-operation-algorithm.js'
import { BY_HASH } from './mechanisms.js'
import { keyHash } from './signature-algorithm.js'

export class RsaOaep extends CipherAlgorithm {
  readonly name = 'RSA-OAEP'
  protected readonly mechanism = C.CKM_RSA_PKCS_OAEP
  protected readonly keyTypes = { encrypt: 'public', decrypt: 'private' } as const

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    return { ...algorithm, label: optionalBytes(algorithm.label, 'RsaOaepParams.label') }
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
