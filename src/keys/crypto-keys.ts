/**
 * CryptoKey objects for a key on the token: the private (or secret) key stays there as a
 * TokenCryptoKey; the public key is an ordinary extractable Node CryptoKey, so verifying and
 * exporting it need no device.
 */
import { webcrypto } from 'node:crypto'
import { C, type Template } from '../pkcs11/binding.js'
import type { Signer } from '../pkcs11/signer.js'
import type { Token } from '../pkcs11/token.js'
import { hashLength, type HashName } from '../webcrypto/algorithm.js'
import { TokenCryptoKey } from '../webcrypto/crypto-key.js'
import { objectsOf, type KeyDescription } from './key-description.js'
import type { KeyKind } from './jose-algorithms.js'

/** A WebCrypto algorithm fitted to one key. */
export interface KeyAlgorithmChoice {
  name: string
  hash?: HashName
  namedCurve?: string
}

/** The kind of key each WebCrypto algorithm this library knows takes. */
export const KEY_KINDS: Readonly<Record<string, KeyKind>> = {
  'RSASSA-PKCS1-v1_5': 'RSA',
  'RSA-PSS': 'RSA',
  'RSA-OAEP': 'RSA',
  ECDSA: 'EC',
  ECDH: 'EC',
  Ed25519: 'OKP',
  X25519: 'OKP',
  HMAC: 'oct',
  'AES-GCM': 'oct',
  'AES-CBC': 'oct',
  'AES-CTR': 'oct',
  'AES-KW': 'oct',
}

/** Usages a private (or secret) key may have, by WebCrypto algorithm; the public key gets the rest. */
export const PRIVATE_USAGES: Readonly<Record<string, readonly KeyUsage[]>> = {
  'RSASSA-PKCS1-v1_5': ['sign'],
  'RSA-PSS': ['sign'],
  'RSA-OAEP': ['decrypt', 'unwrapKey'],
  ECDSA: ['sign'],
  ECDH: ['deriveKey', 'deriveBits'],
  Ed25519: ['sign'],
  X25519: ['deriveKey', 'deriveBits'],
  HMAC: ['sign', 'verify'],
  'AES-GCM': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  'AES-CBC': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  'AES-CTR': ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
  'AES-KW': ['wrapKey', 'unwrapKey'],
}

export const PUBLIC_USAGES: Readonly<Record<string, readonly KeyUsage[]>> = {
  'RSASSA-PKCS1-v1_5': ['verify'],
  'RSA-PSS': ['verify'],
  'RSA-OAEP': ['encrypt', 'wrapKey'],
  ECDSA: ['verify'],
  ECDH: [],
  Ed25519: ['verify'],
  X25519: [],
}

/** The usages the key's CKA_ flags allow for `algorithm`. */
export function usagesAllowedBy(key: KeyDescription, algorithm: string): KeyUsage[] {
  const flagOf: Record<KeyUsage, boolean> = {
    sign: key.can.sign,
    verify: key.can.verify,
    decrypt: key.can.decrypt,
    // Unwrapping is decrypting, but for AES-KW (C_UnwrapKey).
    unwrapKey: algorithm === 'AES-KW' ? key.can.unwrap : key.can.decrypt,
    deriveKey: key.can.derive,
    deriveBits: key.can.derive,
    // A private key's public half encrypts and wraps (a Node key); a secret key does both itself.
    // AES-GCM/CBC/CTR wrap by encrypting (see the key factory): CKA_ENCRYPT serves wrapKey too.
    encrypt: key.type === 'secret' && key.can.encrypt,
    wrapKey: key.type === 'secret' && (algorithm === 'AES-KW' ? key.can.wrap : key.can.encrypt),
  }
  return (PRIVATE_USAGES[algorithm] ?? []).filter((usage) => flagOf[usage])
}

/**
 * The token-held CryptoKey for `key` used with `algorithm` and `usages`.
 * `keyPin` (CKA_ALWAYS_AUTHENTICATE keys) is kept inside the key, never shown.
 */
export function tokenCryptoKey(
  token: Token,
  key: KeyDescription,
  algorithm: KeyAlgorithmChoice,
  usages: KeyUsage[],
  options: { publicJwk?: JsonWebKey; keyPin?: string; exportJwk?: () => Promise<JsonWebKey>; signer?: Signer; oaepLabels?: boolean; oaepRaw?: boolean } = {},
): TokenCryptoKey {
  return new TokenCryptoKey(
    {
      signer: options.signer ?? keySigner(token, key),
      outputLength: outputLength(key, algorithm),
      alwaysAuthenticate: key.alwaysAuthenticate,
      keyPin: options.keyPin,
      exportJwk: options.exportJwk,
      oaepLabels: options.oaepLabels,
      oaepRaw: options.oaepRaw,
    },
    key.type,
    keyAlgorithm(key, algorithm, options.publicJwk),
    usages,
    options.exportJwk !== undefined,
  )
}

/** The public key as a Node CryptoKey with the same algorithm, for verifying and export. */
export function publicCryptoKey(jwk: JsonWebKey, algorithm: KeyAlgorithmChoice, usages?: KeyUsage[]): Promise<CryptoKey> {
  const { name, hash, namedCurve } = algorithm
  return webcrypto.subtle.importKey('jwk', jwk, { name, hash, namedCurve } as Algorithm, true, usages ?? [...(PUBLIC_USAGES[name] ?? [])])
}

/** What signs with `key` on `token`. */
export function keySigner(token: Token, key: KeyDescription): Signer {
  return token.signer(token.keyRef(key.handle, findAgain(key)))
}

/** The attributes that find the key again (after its token came back, or on another token). */
export function findAgain(key: Pick<KeyDescription, 'type' | 'id' | 'label'>): Template {
  return objectsOf(key.type === 'secret' ? C.CKO_SECRET_KEY : C.CKO_PRIVATE_KEY, key)
}

/** The key's algorithm, its members in the order Node gives its generated keys' (inspect() shows it). */
function keyAlgorithm(key: KeyDescription, { name, hash, namedCurve }: KeyAlgorithmChoice, publicJwk?: JsonWebKey): KeyAlgorithm {
  if (key.kty === 'RSA') {
    const exponent = key.publicExponent ?? (publicJwk?.e ? Buffer.from(publicJwk.e, 'base64url') : Buffer.from([1, 0, 1]))
    return { name, modulusLength: key.bits!, publicExponent: new Uint8Array(exponent), hash: { name: hash! } } as RsaHashedKeyAlgorithm
  }
  if (key.secret === 'generic') return { name, length: key.bits!, hash: { name: hash! } } as HmacKeyAlgorithm
  if (key.secret === 'aes') return { name, length: key.bits! } as AesKeyAlgorithm
  if (namedCurve) return { name, namedCurve } as EcKeyAlgorithm
  return { name }
}

function outputLength(key: KeyDescription, algorithm: KeyAlgorithmChoice): number {
  if (key.kty === 'RSA') return Math.ceil(key.bits! / 8)
  if (key.kty === 'oct') return algorithm.hash ? hashLength(algorithm.hash) : 0
  return 2 * key.curve!.size
}
