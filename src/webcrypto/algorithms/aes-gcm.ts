/** AES-GCM (JOSE A128GCM.. for `dir`, A128GCMKW..) with a token AES key: CKM_AES_GCM, any IV length, AAD, tags of 32-128 bits. */
import { C } from '../../pkcs11/binding.js'
import type { KeyOperation } from '../../pkcs11/dispatch/protocol.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import { CipherAlgorithm, operationFailed, optionalBytes, requiredBytes } from './key-operation-algorithm.js'

const TAG_LENGTHS = [32, 64, 96, 104, 112, 120, 128]

export class AesGcm extends CipherAlgorithm {
  readonly name = 'AES-GCM'
  protected readonly mechanism = C.CKM_AES_GCM
  protected readonly keyTypes = { encrypt: 'secret', decrypt: 'secret' } as const

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    const iv = requiredBytes(algorithm.iv, 'AesGcmParams.iv')
    const additionalData = optionalBytes(algorithm.additionalData, 'AesGcmParams.additionalData') ?? Buffer.alloc(0)
    const tagLength = algorithm.tagLength === undefined ? 128 : Number(algorithm.tagLength)
    if (!TAG_LENGTHS.includes(tagLength)) throw operationFailed(`${String(algorithm.tagLength)} is not a valid AES-GCM tag length`)
    if (iv.length === 0) throw operationFailed('the AES-GCM IV must not be empty')
    return { ...algorithm, iv, additionalData, tagLength }
  }

  protected operation(algorithm: NormalizedAlgorithm, _: unknown, op: 'encrypt' | 'decrypt', data: Buffer): KeyOperation {
    const tagBytes = (algorithm.tagLength as number) / 8
    if (op === 'decrypt' && data.length < tagBytes) throw operationFailed('the data is shorter than the tag')
    // CK_PARAMS_GCM, not CK_PARAMS_AES_GCM (whose ivBits pkcs11js leaves uninitialized); ivBits is the IV's, set per call.
    const parameter = { type: C.CK_PARAMS_GCM, ivBits: 0, tagBits: tagBytes * 8 }
    return {
      op,
      mechanism: { mechanism: this.mechanism, parameter },
      parameter: [
        ['iv', algorithm.iv as Buffer],
        ['aad', algorithm.additionalData as Buffer],
      ],
      data,
      outputLength: op === 'encrypt' ? data.length + tagBytes : data.length,
    }
  }
}
