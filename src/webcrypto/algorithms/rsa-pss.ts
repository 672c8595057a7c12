/** RSA-PSS (JOSE PS256/384/512): MGF1 with the key's hash, salt length from the call. */
import { C } from '../../pkcs11/binding.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import type { HashName, NormalizedAlgorithm } from '../algorithm.js'
import type { TokenCryptoKey } from '../crypto-key.js'
import { BY_HASH } from './mechanisms.js'
import { SignatureAlgorithm, digest, isLarge, keyHash, type SignatureStep } from './signature-algorithm.js'

export class RsaPss extends SignatureAlgorithm {
  readonly name = 'RSA-PSS'

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    const { saltLength } = algorithm
    if (saltLength === undefined) throw new TypeError('RsaPssParams.saltLength is required')
    const salt = Number(saltLength)
    if (!Number.isInteger(salt) || salt < 0 || salt > 0xffffffff) throw new TypeError('saltLength must be an unsigned long')
    return { ...algorithm, saltLength: salt }
  }

  isSupportedBy(token: Mechanisms, hash: HashName): boolean {
    return token.hasMechanism(BY_HASH[hash].rsaPss) || token.hasMechanism(C.CKM_RSA_PKCS_PSS)
  }

  protected step(algorithm: NormalizedAlgorithm, key: TokenCryptoKey, data: Buffer, token: Mechanisms): SignatureStep {
    const hash = keyHash(key)
    const { rsaPss, digest: hashAlg, mgf1 } = BY_HASH[hash]
    const parameter = { type: C.CK_PARAMS_RSA_PSS, hashAlg, mgf: mgf1, saltLen: algorithm.saltLength as number }
    if (token.hasMechanism(rsaPss) && !(isLarge(data) && token.hasMechanism(C.CKM_RSA_PKCS_PSS))) return { mechanism: { mechanism: rsaPss, parameter }, input: data }
    return { mechanism: { mechanism: C.CKM_RSA_PKCS_PSS, parameter }, input: digest(hash, data) }
  }
}
