/**
 * ECDH (P-256, P-384, P-521; JOSE ECDH-ES..) and X25519 key agreement with a token private key:
 * C_DeriveKey CKM_ECDH1_DERIVE with CKD_NULL into a session secret that is read and destroyed at
 * once. The result is Z itself; `length` takes its first bits, as the specification says.
 */
import { KeyObject } from 'node:crypto'
import { C } from '../../pkcs11/binding.js'
import type { NormalizedAlgorithm } from '../algorithm.js'
import type { TokenCryptoKey } from '../crypto-key.js'
import { invalidAccess } from '../errors.js'
import { KeyOperationAlgorithm, operationFailed } from './key-operation-algorithm.js'

/** Bytes of Z by curve. */
const Z_BYTES: Readonly<Record<string, number>> = { 'P-256': 32, 'P-384': 48, 'P-521': 66, X25519: 32 }

class KeyAgreement extends KeyOperationAlgorithm {
  protected readonly mechanism = C.CKM_ECDH1_DERIVE
  constructor(readonly name: 'ECDH' | 'X25519') {
    super()
  }

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    const peer = algorithm.public
    if (peer === undefined) throw new TypeError(`${this.name} needs algorithm.public`)
    if (Object.prototype.toString.call(peer) !== '[object CryptoKey]') throw new TypeError('algorithm.public must be a CryptoKey')
    return algorithm
  }

  /** The first `length` bits of Z (all of it for null) with the peer's public key `algorithm.public`. */
  async deriveBits(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, length: number | null): Promise<ArrayBuffer> {
    const peer = algorithm.public as CryptoKey
    const object = this.check(algorithm, key, 'deriveBits', 'private')
    if (peer.type !== 'public') throw invalidAccess('algorithm.public must be a public key')
    if (peer.algorithm.name !== key.algorithm.name) throw invalidAccess(`algorithm.public is a ${peer.algorithm.name} key, not ${key.algorithm.name}`)
    const curve = (key.algorithm as EcKeyAlgorithm).namedCurve ?? this.name
    if (this.name === 'ECDH' && (peer.algorithm as EcKeyAlgorithm).namedCurve !== curve) throw invalidAccess(`algorithm.public is not on ${curve}`)
    const zBytes = Z_BYTES[curve]
    if (length !== null && length > zBytes * 8) throw operationFailed(`${length} bits asked of a ${zBytes * 8}-bit shared secret`)
    const point = rawPoint(peer)
    const parameter = { type: C.CK_PARAMS_EC_DH, kdf: C.CKD_NULL }
    const z = await this.run(
      object,
      {
        op: 'derive',
        mechanism: { mechanism: this.mechanism, parameter },
        parameter: [['publicData', point]],
        data: new Uint8Array(0),
        outputLength: zBytes,
      },
      algorithm,
    )
    // run() answers an ArrayBuffer of Z alone: the whole of it is the answer, or a part is copied and Z zeroed.
    if (length === null) return z
    const result = z.slice(0, Math.ceil(length / 8))
    const bits = new Uint8Array(result)
    if (length % 8) bits[bits.length - 1] &= 0xff << (8 - (length % 8))
    new Uint8Array(z).fill(0)
    return result
  }
}

/** The peer's public point as C_DeriveKey takes it (04||x||y, or the X25519 u), read synchronously (no trip to libuv's pool). */
function rawPoint(peer: CryptoKey): Buffer {
  const { x, y } = KeyObject.from(peer).export({ format: 'jwk' })
  const u = Buffer.from(x!, 'base64url')
  return y === undefined ? u : Buffer.concat([Buffer.from([4]), u, Buffer.from(y, 'base64url')])
}

export class Ecdh extends KeyAgreement {
  constructor() {
    super('ECDH')
  }
}

export class X25519 extends KeyAgreement {
  constructor() {
    super('X25519')
  }
}
