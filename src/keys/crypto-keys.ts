/**
 * CryptoKey objects for a key found on the token: the private (or secret) key stays there as a
 * TokenCryptoKey; the public key is an ordinary extractable Node CryptoKey, so verifying and
 * exporting it need no device.
 */
import { webcrypto } from 'node:crypto'
import type { Token } from '../pkcs11/token.js'
import { hashLength } from '../webcrypto/algorithm.js'
import { TokenCryptoKey } from '../webcrypto/crypto-key.js'
import { invalidAccess } from '../webcrypto/errors.js'
import { describe, type KeyAlgorithmChoice } from './key-algorithm.js'
import type { KeyDescription } from './key-description.js'

const F4 = new Uint8Array([1, 0, 1])

/** The token-held CryptoKey for `key` used with `algorithm`. */
export function tokenCryptoKey(token: Token, key: KeyDescription, algorithm: KeyAlgorithmChoice, publicJwk?: JsonWebKey): TokenCryptoKey {
  const usages: KeyUsage[] = []
  if (key.can.sign) usages.push('sign')
  if (key.type === 'secret' && key.can.verify) usages.push('verify')
  if (usages.length === 0) throw invalidAccess(`${describe(key)} may not sign (its CKA_SIGN is false)`)
  return new TokenCryptoKey({ token, handle: key.handle, outputLength: outputLength(key, algorithm) }, key.type, keyAlgorithm(key, algorithm, publicJwk), usages)
}

/** The public key as a Node CryptoKey with the same algorithm, for verifying and export. */
export function publicCryptoKey(jwk: JsonWebKey, algorithm: KeyAlgorithmChoice): Promise<CryptoKey> {
  const { name, hash, namedCurve } = algorithm
  return webcrypto.subtle.importKey('jwk', jwk, { name, hash, namedCurve } as Algorithm, true, ['verify'])
}

function keyAlgorithm(key: KeyDescription, { name, hash, namedCurve }: KeyAlgorithmChoice, publicJwk?: JsonWebKey): KeyAlgorithm {
  if (key.kty === 'RSA') {
    const exponent = key.publicExponent ?? (publicJwk?.e ? Buffer.from(publicJwk.e, 'base64url') : undefined)
    return { name, hash: { name: hash! }, modulusLength: key.bits!, publicExponent: exponent ? new Uint8Array(exponent) : F4 } as RsaHashedKeyAlgorithm
  }
  if (key.kty === 'oct') return { name, hash: { name: hash! }, length: key.bits! } as HmacKeyAlgorithm
  if (namedCurve) return { name, namedCurve } as EcKeyAlgorithm
  return { name }
}

function outputLength(key: KeyDescription, algorithm: KeyAlgorithmChoice): number {
  if (key.kty === 'RSA') return Math.ceil(key.bits! / 8)
  if (key.kty === 'oct') return hashLength(algorithm.hash!)
  return 2 * key.curve!.size
}
