/** Which JOSE algorithms a token can sign with: its mechanism list, read through each algorithm's needs. */
import type { Mechanisms } from '../pkcs11/signer.js'
import type { HashName } from '../webcrypto/algorithm.js'
import { TOKEN_ALGORITHMS } from '../webcrypto/algorithms/index.js'
import { JOSE_ALGORITHMS, type JoseAlgorithm } from './jose-algorithms.js'

/**
 * The JOSE names (RS256 ... EdDSA, HS256 ..., RSA-OAEP ..., ECDH-ES ..., A128KW ...) whose
 * mechanisms `token` lists, as the Nimbus guide lists a provider's services; 'Ed25519' is left out
 * as the alias of 'EdDSA'. Which hashes a token's RSA-OAEP does is not in its mechanism list: a
 * key's listing (keys.list) says, having tried.
 *
 * @example
 * supportedJoseAlgorithms(token) // ['RS256', 'RS384', ..., 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', ...]
 */
export function supportedJoseAlgorithms(token: Mechanisms, fits: (alg: JoseAlgorithm) => boolean = () => true): string[] {
  return Object.entries(JOSE_ALGORITHMS)
    .filter(([name, alg]) => name !== 'Ed25519' && fits(alg) && TOKEN_ALGORITHMS.get(alg.name)!.isSupportedBy(token, alg.hash as HashName))
    .map(([name]) => name)
}
