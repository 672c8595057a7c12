/** HMAC (JOSE HS256/384/512) with a secret key on the token; the hash comes from the key. */
import type { Mechanisms } from '../../pkcs11/signer.js'
import type { HashName } from '../algorithm.js'
import type { TokenCryptoKey } from '../crypto-key.js'
import { BY_HASH } from './mechanisms.js'
import { SignatureAlgorithm, keyHash, type SignatureStep } from './signature-algorithm.js'

export class Hmac extends SignatureAlgorithm {
  readonly name = 'HMAC'

  isSupportedBy(token: Mechanisms, hash: HashName): boolean {
    return token.hasMechanism(BY_HASH[hash].hmac)
  }

  protected step(_: unknown, key: TokenCryptoKey, data: Buffer): SignatureStep {
    return { mechanism: { mechanism: BY_HASH[keyHash(key)].hmac }, input: data }
  }
}
