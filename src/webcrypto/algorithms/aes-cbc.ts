/** AES-CBC with a token AES key: CKM_AES_CBC_PAD (PKCS#7 padding, as WebCrypto's). */
import { C } from '../../pkcs11/binding.js'
import type { KeyOperation } from '../../pkcs11/dispatch/protocol.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import { CipherAlgorithm, operationFailed, requiredBytes } from './key-operation-algorithm.js'

const BLOCK = 16

export class AesCbc extends CipherAlgorithm {
  readonly name = 'AES-CBC'
  protected readonly mechanism = C.CKM_AES_CBC_PAD
  protected readonly keyTypes = { encrypt: 'secret', decrypt: 'secret' } as const

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    const iv = requiredBytes(algorithm.iv, 'AesCbcParams.iv')
    if (iv.length !== BLOCK) throw operationFailed('the AES-CBC IV must be 16 bytes')
    return { ...algorithm, iv }
  }

  protected operation(algorithm: NormalizedAlgorithm, _: unknown, op: 'encrypt' | 'decrypt', data: Buffer): KeyOperation {
    if (op === 'decrypt' && (data.length === 0 || data.length % BLOCK !== 0)) throw operationFailed('the data is not a whole number of AES blocks')
    return {
      op,
      mechanism: { mechanism: this.mechanism },
      parameter: [['', algorithm.iv as Buffer]],
      data,
      outputLength: op === 'encrypt' ? data.length + BLOCK - (data.length % BLOCK) : data.length,
    }
  }
}
