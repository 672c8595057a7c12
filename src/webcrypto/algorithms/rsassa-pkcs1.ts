/** RSASSA-PKCS1-v1_5 (JOSE RS256/384/512). The hash comes from the key. */
import { C } from '../../pkcs11/binding.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import type { HashName } from '../algorithm.js'
import type { TokenCryptoKey } from '../crypto-key.js'
import { BY_HASH } from './mechanisms.js'
import { SignatureAlgorithm, digest, isLarge, keyHash, type SignatureStep } from './signature-algorithm.js'

export class RsassaPkcs1 extends SignatureAlgorithm {
  readonly name = 'RSASSA-PKCS1-v1_5'

  isSupportedBy(token: Mechanisms, hash: HashName): boolean {
    return token.hasMechanism(BY_HASH[hash].rsaPkcs) || token.hasMechanism(C.CKM_RSA_PKCS)
  }

  protected step(_: unknown, key: TokenCryptoKey, data: Buffer, token: Mechanisms): SignatureStep {
    const hash = keyHash(key)
    const { rsaPkcs, digestInfo } = BY_HASH[hash]
    if (token.hasMechanism(rsaPkcs) && !(isLarge(data) && token.hasMechanism(C.CKM_RSA_PKCS))) return { mechanism: { mechanism: rsaPkcs }, input: data }
    // Raw CKM_RSA_PKCS pads what it is given: give it the DigestInfo of the hash (the same signature).
    return { mechanism: { mechanism: C.CKM_RSA_PKCS }, input: Buffer.concat([digestInfo, digest(hash, data)]) }
  }
}
