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
  kty: KeyKind
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
}

/** The JOSE algorithm a key gets when the caller names none. */
export function defaultJoseAlgorithm(kty: KeyKind, curve?: string): string {
  if (kty === 'RSA') return 'RS256'
  if (kty === 'oct') return 'HS256'
  if (curve === 'Ed25519') return 'EdDSA'
  return Object.entries(JOSE_ALGORITHMS).find(([, a]) => a.namedCurve === curve)?.[0] ?? 'ES256'
}

/** The JOSE name of a WebCrypto algorithm on a key, e.g. RSA-PSS with SHA-384 -> 'PS384'. */
export function joseNameOf(algorithm: { name: string; hash?: { name: string }; namedCurve?: string }): string | undefined {
  return Object.entries(JOSE_ALGORITHMS).find(([, a]) => a.name === algorithm.name && (a.namedCurve ? a.namedCurve === algorithm.namedCurve : a.hash === algorithm.hash?.name))?.[0]
}
