/** AES-CTR with a token AES key: CKM_AES_CTR, the counter block and the bits of it that count. */
import { C } from '../../pkcs11/binding.js'
import type { KeyOperation } from '../../pkcs11/dispatch/protocol.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import { CipherAlgorithm, operationFailed, requiredBytes } from './key-operation-algorithm.js'

export class AesCtr extends CipherAlgorithm {
  readonly name = 'AES-CTR'
  protected readonly mechanism = C.CKM_AES_CTR
  protected readonly keyTypes = { encrypt: 'secret', decrypt: 'secret' } as const

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    const counter = requiredBytes(algorithm.counter, 'AesCtrParams.counter')
    if (algorithm.length === undefined) throw new TypeError('AesCtrParams.length is required')
    const length = Number(algorithm.length)
    if (counter.length !== 16) throw operationFailed('the AES-CTR counter must be 16 bytes')
    if (!Number.isInteger(length) || length < 1 || length > 128) throw operationFailed('the AES-CTR length must be 1 to 128')
    return { ...algorithm, counter, length }
  }

  protected operation(algorithm: NormalizedAlgorithm, _: unknown, op: 'encrypt' | 'decrypt', data: Buffer): KeyOperation {
    // CK_AES_CTR_PARAMS, which pkcs11js has no type for: a CK_ULONG (8 bytes on 64-bit Unix) of counter bits, then the block.
    const parameter = Buffer.alloc(24)
    parameter.writeBigUInt64LE(BigInt(algorithm.length as number))
    ;(algorithm.counter as Buffer).copy(parameter, 8)
    return { op, mechanism: { mechanism: this.mechanism }, parameter: [['', parameter]], data, outputLength: data.length }
  }
}
