/** What a key object on the token is, read once from its public attributes. */
import { C, type Handle, type Template } from '../pkcs11/binding.js'
import type { Token } from '../pkcs11/token.js'
import { curveOfParams, type Curve } from './curves.js'
import type { KeyKind } from './jose-algorithms.js'

export interface KeyDescription {
  handle: Handle
  type: 'private' | 'secret'
  kty: KeyKind
  /** For secret keys: an AES key, or a generic (HMAC) secret. */
  secret?: 'aes' | 'generic'
  /** CKA_ID; may be empty. */
  id: Buffer
  label: string
  /** RSA modulus or secret key size. */
  bits?: number
  curve?: Curve
  /** RSA public parts, when the private key object carries them (most do). */
  modulus?: Buffer
  publicExponent?: Buffer
  can: { sign: boolean; verify: boolean; decrypt: boolean; derive: boolean; unwrap: boolean; encrypt: boolean; wrap: boolean }
  alwaysAuthenticate: boolean
  /** CKA_EXTRACTABLE and not CKA_SENSITIVE: its value can be read, so WebCrypto may export it. */
  exportable: boolean
}

const ATTRIBUTES = [
  C.CKA_CLASS,
  C.CKA_KEY_TYPE,
  C.CKA_ID,
  C.CKA_LABEL,
  C.CKA_SIGN,
  C.CKA_VERIFY,
  C.CKA_DECRYPT,
  C.CKA_DERIVE,
  C.CKA_UNWRAP,
  C.CKA_MODULUS,
  C.CKA_PUBLIC_EXPONENT,
  C.CKA_EC_PARAMS,
  C.CKA_VALUE_LEN,
  C.CKA_ALWAYS_AUTHENTICATE,
  C.CKA_EXTRACTABLE,
  C.CKA_SENSITIVE,
  C.CKA_ENCRYPT,
  C.CKA_WRAP,
]

const KINDS = new Map<number, KeyKind>([
  [C.CKK_RSA, 'RSA'],
  [C.CKK_EC, 'EC'],
  [C.CKK_EC_EDWARDS, 'OKP'],
  [C.CKK_EC_MONTGOMERY, 'OKP'],
  [C.CKK_GENERIC_SECRET, 'oct'],
  [C.CKK_SHA256_HMAC, 'oct'],
  [C.CKK_SHA384_HMAC, 'oct'],
  [C.CKK_SHA512_HMAC, 'oct'],
  [C.CKK_AES, 'oct'],
])

/**
 * Describes the private or secret key `handle`, or returns undefined for a key type this library
 * does not serve (DSA, GOST, AES ... for signing).
 */
export async function describeKey(token: Token, handle: Handle): Promise<KeyDescription | undefined> {
  const a = await token.getAttributes(handle, ATTRIBUTES)
  const keyType = ulong(a.get(C.CKA_KEY_TYPE)) ?? -1
  const kty = KINDS.get(keyType)
  if (!kty) return undefined
  const flag = (type: number) => a.get(type)?.[0] === 1
  const modulus = a.get(C.CKA_MODULUS)
  const valueLength = ulong(a.get(C.CKA_VALUE_LEN))
  const curve = curveOfParams(a.get(C.CKA_EC_PARAMS))
  if ((kty === 'EC' || kty === 'OKP') && curve?.kty !== kty) return undefined
  return {
    handle,
    type: ulong(a.get(C.CKA_CLASS)) === C.CKO_SECRET_KEY ? 'secret' : 'private',
    kty,
    secret: kty === 'oct' ? (keyType === C.CKK_AES ? 'aes' : 'generic') : undefined,
    id: a.get(C.CKA_ID) ?? Buffer.alloc(0),
    label: a.get(C.CKA_LABEL)?.toString('utf8') ?? '',
    bits: modulus ? bitLength(modulus) : valueLength !== undefined ? valueLength * 8 : undefined,
    curve,
    modulus,
    publicExponent: a.get(C.CKA_PUBLIC_EXPONENT),
    can: {
      sign: flag(C.CKA_SIGN),
      verify: flag(C.CKA_VERIFY),
      decrypt: flag(C.CKA_DECRYPT),
      derive: flag(C.CKA_DERIVE),
      unwrap: flag(C.CKA_UNWRAP),
      encrypt: flag(C.CKA_ENCRYPT),
      wrap: flag(C.CKA_WRAP),
    },
    alwaysAuthenticate: flag(C.CKA_ALWAYS_AUTHENTICATE),
    exportable: flag(C.CKA_EXTRACTABLE) && !flag(C.CKA_SENSITIVE),
  }
}

/**
 * The objects that belong to `key` of class `objectClass` (its public key, its certificate, the
 * key itself on another token or after its token came back): the same CKA_ID, or the same label
 * when the key has no id.
 */
export function objectsOf(objectClass: number, key: Pick<KeyDescription, 'id' | 'label'>): Template {
  const match = key.id.length > 0 ? { type: C.CKA_ID, value: key.id } : { type: C.CKA_LABEL, value: key.label }
  return [{ type: C.CKA_CLASS, value: objectClass }, match]
}

/** A CK_ULONG attribute value (native-endian, 8 bytes on 64-bit Linux). */
export function ulong(value: Buffer | undefined): number | undefined {
  if (!value || value.length === 0) return undefined
  return value.length >= 8 ? Number(value.readBigUInt64LE(0)) : value.readUInt32LE(0)
}

function bitLength(unsigned: Buffer): number {
  let i = 0
  while (i < unsigned.length && unsigned[i] === 0) i++
  return i === unsigned.length ? 0 : (unsigned.length - i) * 8 - Math.clz32(unsigned[i]) + 24
}
