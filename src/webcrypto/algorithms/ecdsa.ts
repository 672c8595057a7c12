/**
 * ECDSA (JOSE ES256/384/512). PKCS#11 returns r||s, the form WebCrypto and JWS use. Tokens that
 * have only raw CKM_ECDSA (SoftHSM) get the digest computed in software.
 */
import { C } from '../../pkcs11/binding.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import { hashName, type HashName, type NormalizedAlgorithm } from '../algorithm.js'
import type { TokenCryptoKey } from '../crypto-key.js'
import { BY_HASH } from './mechanisms.js'
import { SignatureAlgorithm, digest, type SignatureStep } from './signature-algorithm.js'

export class Ecdsa extends SignatureAlgorithm {
  readonly name = 'ECDSA'

  override normalize(algorithm: NormalizedAlgorithm): NormalizedAlgorithm {
    return { ...algorithm, hash: { name: hashName(algorithm.hash) } }
  }

  isSupportedBy(token: Mechanisms, hash: HashName): boolean {
    return token.hasMechanism(BY_HASH[hash].ecdsa) || token.hasMechanism(C.CKM_ECDSA)
  }

  protected step(algorithm: NormalizedAlgorithm, _: TokenCryptoKey, data: Buffer, token: Mechanisms): SignatureStep {
    const hash = (algorithm.hash as { name: HashName }).name
    const { ecdsa } = BY_HASH[hash]
    if (token.hasMechanism(ecdsa)) return { mechanism: { mechanism: ecdsa }, input: data }
    return { mechanism: { mechanism: C.CKM_ECDSA }, input: digest(hash, data) }
  }
}
