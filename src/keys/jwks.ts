/** A JWKS of the token's public keys, with RFC 7638 thumbprints and certificate chains. */
import { createHash } from 'node:crypto'
import { webcrypto } from 'node:crypto'
import { KeyNotFoundError } from '../errors.js'
import type { KeyStore, TokenKey } from './key-store.js'
import { PRIVATE_USAGES } from './crypto-keys.js'
import { JOSE_ALGORITHMS } from './jose-algorithms.js'

export interface JwksOptions {
  /** What `kid` is: the RFC 7638 thumbprint (default), the CKA_ID in hex, or the label. */
  kid?: 'thumbprint' | 'id' | 'label'
}

/**
 * A public JWK as published: kid, use ('enc' for a decryption key), and x5c / x5t#S256 when a
 * certificate exists; alg when the key serves one JOSE algorithm on this token (an RSA key serves
 * RS256..PS512: no alg, so a verifier takes any of them, as RFC 7517 allows).
 */
export type PublishedJwk = JsonWebKey & { kid: string; alg?: string; use: 'sig' | 'enc'; x5c?: string[]; 'x5t#S256'?: string }

/**
 * @example
 * const { keys } = await hsm.jwks()          // serve at /.well-known/jwks.json
 * const { keys: byId } = await hsm.jwks({ kid: 'id' })
 */
export async function buildJwks(store: KeyStore, options: JwksOptions = {}): Promise<{ keys: PublishedJwk[] }> {
  const keys: PublishedJwk[] = []
  for (const info of await store.list()) {
    if (info.kty === 'oct' || info.algorithms.length === 0) continue
    let key: TokenKey
    try {
      key = await store.get(info.id ? { id: info.id } : { label: info.label }, { algorithm: info.algorithms[0] })
    } catch (error) {
      // One key that cannot be served (two keys share its CKA_ID, a group member lacks it) must
      // not take the whole JWKS down: it is left out, and said once.
      if (!(error instanceof KeyNotFoundError)) throw error
      warnOnce(`JWKS: key ${info.label ? `"${info.label}" ` : ''}(id ${info.id || 'none'}) left out: ${error.message}`)
      continue
    }
    const alg = info.algorithms.length === 1 ? info.algorithms[0] : undefined
    if (key.publicKey) keys.push(await publishedJwk(key, alg, options))
  }
  return { keys }
}

const warned = new Set<string>()

function warnOnce(message: string): void {
  if (warned.has(message)) return
  warned.add(message)
  process.emitWarning(message, { code: 'PKCS11_JWKS_KEY_LEFT_OUT' })
}

/**
 * The published JWK of one token key, with `alg` when one is given.
 *
 * @example
 * const jwk = await publishedJwk(await hsm.keys.get({ label: 'rsa' }, { algorithm: 'PS256' }), 'PS256')
 */
export async function publishedJwk(key: TokenKey, alg?: string, options: JwksOptions = {}): Promise<PublishedJwk> {
  const { kty, n, e, crv, x, y } = await webcrypto.subtle.exportKey('jwk', key.publicKey!)
  const jwk: JsonWebKey = kty === 'RSA' ? { kty, n, e } : kty === 'EC' ? { kty, crv, x, y } : { kty, crv, x }
  const kid = options.kid === 'id' ? key.id : options.kid === 'label' ? key.label : thumbprint(jwk)
  // A key for decryption or key agreement (RSA-OAEP, ECDH-ES, ...) is published for encryption.
  const use = JOSE_ALGORITHMS[alg ?? '']?.use ?? (PRIVATE_USAGES[key.privateKey.algorithm.name]?.includes('sign') ? 'sig' : 'enc')
  const published: PublishedJwk = { ...jwk, kid, ...(alg !== undefined && { alg }), use }
  if (key.certificate) {
    const der = Buffer.from(key.certificate.rawData)
    published.x5c = [der.toString('base64')]
    published['x5t#S256'] = createHash('sha256').update(der).digest('base64url')
  }
  return published
}

/** RFC 7638: SHA-256 over the required members in lexical order. */
function thumbprint(jwk: JsonWebKey): string {
  const required =
    jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n } : jwk.kty === 'EC' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x }
  return createHash('sha256').update(JSON.stringify(required)).digest('base64url')
}
