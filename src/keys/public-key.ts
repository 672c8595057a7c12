/**
 * The public half of a token key, as a JWK: from the token's public-key object, else from the
 * certificate beside the key, else (RSA) from the private key object itself.
 */
import { createPublicKey, type JsonWebKey as NodeJwk } from 'node:crypto'
import { loadX509, x509, type X509Certificate } from '../lib/x509.js'
import { C, type Handle } from '../pkcs11/binding.js'
import type { Token } from '../pkcs11/token.js'
import { unwrapPoint, type Curve } from './curves.js'
import { objectsOf, type KeyDescription } from './key-description.js'

export interface PublicPart {
  jwk?: JsonWebKey
  certificate?: X509Certificate
}

/**
 * Finds the public key and certificate that belong to `key` (same CKA_ID, else same label). Of
 * several certificates for it, the newest that carries its public key is the one served.
 */
export async function findPublicPart(token: Token, key: KeyDescription): Promise<PublicPart> {
  const known = (await fromPublicKeyObject(token, key)) ?? fromPrivateKey(key)
  const certificate = await findCertificate(token, key, known)
  return { jwk: known ?? (certificate && spkiToJwk(Buffer.from(certificate.publicKey.rawData))), certificate }
}

/** The newest certificate with the key's CKA_ID (or label, when the key has no id) whose public key is `jwk`, when that is known. */
async function findCertificate(token: Token, key: Pick<KeyDescription, 'id' | 'label'>, jwk: JsonWebKey | undefined): Promise<X509Certificate | undefined> {
  const spki = jwk && createPublicKey({ key: jwk as NodeJwk, format: 'jwk' }).export({ format: 'der', type: 'spki' })
  return newestCertificate(token, await token.findObjects(objectsOf(C.CKO_CERTIFICATE, key)), spki)
}

/** Of the certificate objects `handles`, the newest (by notBefore, then notAfter), among those that carry `spki` when it is given. */
export async function newestCertificate(token: Token, handles: Handle[], spki?: Buffer): Promise<X509Certificate | undefined> {
  if (handles.length === 0) return undefined // no certificate: x509 stays unloaded
  await loadX509()
  let newest: X509Certificate | undefined
  for (const handle of handles) {
    const value = (await token.getAttributes(handle, [C.CKA_VALUE])).get(C.CKA_VALUE)
    const certificate = value && parseCertificate(value)
    if (!certificate || (spki && !spki.equals(Buffer.from(certificate.publicKey.rawData)))) continue
    if (!newest || certificate.notBefore > newest.notBefore || (+certificate.notBefore === +newest.notBefore && certificate.notAfter > newest.notAfter)) newest = certificate
  }
  return newest
}

function parseCertificate(der: Buffer): X509Certificate | undefined {
  try {
    return new (x509().X509Certificate)(new Uint8Array(der))
  } catch {
    return undefined // not X.509, or not parseable: not one to serve
  }
}

/** The public key object of `key`; of several with its CKA_ID (a key added with unique: false), the one with its label too. */
async function fromPublicKeyObject(token: Token, key: KeyDescription): Promise<JsonWebKey | undefined> {
  if (key.type !== 'private') return undefined
  const handles = await token.findObjects(objectsOf(C.CKO_PUBLIC_KEY, key))
  let handle = handles[0]
  if (handles.length > 1) {
    for (const candidate of handles) {
      if ((await token.getAttributes(candidate, [C.CKA_LABEL])).get(C.CKA_LABEL)?.toString('utf8') === key.label) handle = candidate
    }
  }
  return handle ? (await readPublicKey(token, handle, key))?.jwk : undefined
}

/**
 * The public key object `handle` as a JWK, and its raw value (RSA modulus, EC point): the bytes
 * tools hash into a CKA_ID.
 */
export async function readPublicKey(token: Token, handle: Handle, key: Pick<KeyDescription, 'kty' | 'curve'>): Promise<{ jwk: JsonWebKey; raw: Buffer } | undefined> {
  const a = await token.getAttributes(handle, [C.CKA_MODULUS, C.CKA_PUBLIC_EXPONENT, C.CKA_EC_POINT])
  if (key.kty === 'RSA') {
    const jwk = rsaJwk(a.get(C.CKA_MODULUS), a.get(C.CKA_PUBLIC_EXPONENT))
    return jwk && { jwk, raw: a.get(C.CKA_MODULUS)! }
  }
  const point = a.get(C.CKA_EC_POINT)
  if (!point || !key.curve) return undefined
  const raw = unwrapPoint(point, key.curve)
  return { jwk: pointToJwk(raw, key.curve), raw }
}

/** A raw EC point (04||x||y) or Edwards public key as a JWK. */
function pointToJwk(raw: Buffer, curve: Curve): JsonWebKey {
  if (curve.kty === 'OKP') return { kty: 'OKP', crv: curve.name, x: raw.toString('base64url') }
  const { size } = curve
  return { kty: 'EC', crv: curve.name, x: raw.subarray(1, 1 + size).toString('base64url'), y: raw.subarray(1 + size).toString('base64url') }
}

function fromPrivateKey(key: KeyDescription): JsonWebKey | undefined {
  return key.kty === 'RSA' ? rsaJwk(key.modulus, key.publicExponent) : undefined
}

function rsaJwk(modulus: Buffer | undefined, exponent: Buffer | undefined): JsonWebKey | undefined {
  if (!modulus?.length || !exponent?.length) return undefined
  return { kty: 'RSA', n: stripZeros(modulus).toString('base64url'), e: stripZeros(exponent).toString('base64url') }
}

function spkiToJwk(spki: Buffer): JsonWebKey {
  return createPublicKey({ key: spki, format: 'der', type: 'spki' }).export({ format: 'jwk' }) as JsonWebKey
}

function stripZeros(unsigned: Buffer): Buffer {
  let i = 0
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++
  return unsigned.subarray(i)
}
