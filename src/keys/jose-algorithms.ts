/**
 * JOSE algorithm names and the WebCrypto algorithms they stand for: the one table that
 * `keys.get(..., { algorithm: 'PS256' })`, key listings and JWKS read.
 */
export type KeyKind = 'RSA' | 'EC' | 'OKP' | 'oct'

export interface JoseAlgorithm {
  /** The WebCrypto algorithm name. */
  name: string
  hash?: string
  /** For ECDSA: the one curve the JOSE name allows. */
  namedCurve?: string
  /** For AES: the key's bits the JOSE name asks for. */
  length?: number
  kty: KeyKind
  /** What a JWK of the key says: signatures (the default), or encryption (JWE key management, or `dir`). */
  use?: 'enc'
}

export const JOSE_ALGORITHMS: Readonly<Record<string, JoseAlgorithm>> = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', kty: 'RSA' },
  RS384: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384', kty: 'RSA' },
  RS512: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-512', kty: 'RSA' },
  PS256: { name: 'RSA-PSS', hash: 'SHA-256', kty: 'RSA' },
  PS384: { name: 'RSA-PSS', hash: 'SHA-384', kty: 'RSA' },
  PS512: { name: 'RSA-PSS', hash: 'SHA-512', kty: 'RSA' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256', kty: 'EC' },
  ES384: { name: 'ECDSA', namedCurve: 'P-384', hash: 'SHA-384', kty: 'EC' },
  ES512: { name: 'ECDSA', namedCurve: 'P-521', hash: 'SHA-512', kty: 'EC' },
  EdDSA: { name: 'Ed25519', kty: 'OKP' },
  Ed25519: { name: 'Ed25519', kty: 'OKP' },
  HS256: { name: 'HMAC', hash: 'SHA-256', kty: 'oct' },
  HS384: { name: 'HMAC', hash: 'SHA-384', kty: 'oct' },
  HS512: { name: 'HMAC', hash: 'SHA-512', kty: 'oct' },
  'RSA-OAEP': { name: 'RSA-OAEP', hash: 'SHA-1', kty: 'RSA', use: 'enc' },
  'RSA-OAEP-256': { name: 'RSA-OAEP', hash: 'SHA-256', kty: 'RSA', use: 'enc' },
  'RSA-OAEP-384': { name: 'RSA-OAEP', hash: 'SHA-384', kty: 'RSA', use: 'enc' },
  'RSA-OAEP-512': { name: 'RSA-OAEP', hash: 'SHA-512', kty: 'RSA', use: 'enc' },
  // Any curve of the key (P-256/384/521, or X25519 for an OKP key); the KW step runs in jose.
  'ECDH-ES': { name: 'ECDH', kty: 'EC', use: 'enc' },
  'ECDH-ES+A128KW': { name: 'ECDH', kty: 'EC', use: 'enc' },
  'ECDH-ES+A192KW': { name: 'ECDH', kty: 'EC', use: 'enc' },
  'ECDH-ES+A256KW': { name: 'ECDH', kty: 'EC', use: 'enc' },
  A128KW: { name: 'AES-KW', length: 128, kty: 'oct', use: 'enc' },
  A192KW: { name: 'AES-KW', length: 192, kty: 'oct', use: 'enc' },
  A256KW: { name: 'AES-KW', length: 256, kty: 'oct', use: 'enc' },
  A128GCMKW: { name: 'AES-GCM', length: 128, kty: 'oct', use: 'enc' },
  A192GCMKW: { name: 'AES-GCM', length: 192, kty: 'oct', use: 'enc' },
  A256GCMKW: { name: 'AES-GCM', length: 256, kty: 'oct', use: 'enc' },
  // The content encryptions, for a key used with alg 'dir'.
  A128GCM: { name: 'AES-GCM', length: 128, kty: 'oct', use: 'enc' },
  A192GCM: { name: 'AES-GCM', length: 192, kty: 'oct', use: 'enc' },
  A256GCM: { name: 'AES-GCM', length: 256, kty: 'oct', use: 'enc' },
}

/** The JOSE algorithm a key gets when the caller names none (an AES key: 'A256GCM' for `dir` and A*GCMKW, by its size). */
export function defaultJoseAlgorithm(kty: KeyKind, curve?: string, aesBits?: number): string {
  if (kty === 'RSA') return 'RS256'
  if (kty === 'oct') return aesBits ? `A${aesBits}GCM` : 'HS256'
  if (curve === 'Ed25519') return 'EdDSA'
  if (curve === 'X25519') return 'ECDH-ES'
  return Object.entries(JOSE_ALGORITHMS).find(([, a]) => a.namedCurve === curve)?.[0] ?? 'ES256'
}

/** The JOSE name of a WebCrypto algorithm on a key, e.g. RSA-PSS with SHA-384 -> 'PS384'. */
export function joseNameOf(algorithm: { name: string; hash?: { name: string }; namedCurve?: string }): string | undefined {
  return Object.entries(JOSE_ALGORITHMS).find(
    ([, a]) => a.name === algorithm.name && (a.namedCurve ? a.namedCurve === algorithm.namedCurve : a.hash === algorithm.hash?.name) && a.use === undefined,
  )?.[0]
}
