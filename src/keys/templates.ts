/**
 * PKCS#11 attribute templates for keys made or imported on the token: where WebCrypto usages and
 * the caller's storage options become CKA_ attributes.
 */
import { C, type Template } from '../pkcs11/binding.js'

/** How a new key is stored. */
export interface StorageOptions {
  /** CKA_LABEL. */
  label?: string
  /** CKA_ID in hex (default: derived from the public key, or random for secret keys). */
  id?: string
  /** CKA_TOKEN: kept on the token (true) or a session object gone when the sessions close (default). */
  persistent?: boolean
  /** CKA_EXTRACTABLE; a non-sensitive, extractable key can also be exported through WebCrypto. */
  extractable?: boolean
}

const USAGE_FLAGS: Record<KeyUsage, number> = {
  sign: C.CKA_SIGN, verify: C.CKA_VERIFY, encrypt: C.CKA_ENCRYPT, decrypt: C.CKA_DECRYPT,
  wrapKey: C.CKA_WRAP, unwrapKey: C.CKA_UNWRAP, deriveKey: C.CKA_DERIVE, deriveBits: C.CKA_DERIVE,
}

/** The usages each kind of object can carry a CKA_ flag for. */
const OBJECT_USAGES: Record<'private' | 'public' | 'secret', readonly KeyUsage[]> = {
  private: ['sign', 'decrypt', 'unwrapKey', 'deriveBits'],
  public: ['verify', 'encrypt', 'wrapKey'],
  secret: ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey', 'deriveBits'],
}

/**
 * CKA_SIGN, CKA_DECRYPT ... true for `usages` and explicitly false for the rest: tokens default
 * some of them to true (SoftHSM makes every private key CKA_SIGN unless told otherwise).
 */
export function usageAttributes(usages: readonly KeyUsage[], object: 'private' | 'public' | 'secret'): Template {
  return OBJECT_USAGES[object].map((usage) => ({
    type: USAGE_FLAGS[usage],
    value: usages.includes(usage) || (usage === 'deriveBits' && usages.includes('deriveKey')),
  }))
}

/** Attributes every private or secret key gets: storage, label, id, and never readable unless asked. */
export function secretAttributes(options: StorageOptions, id: Buffer | undefined): Template {
  const extractable = options.extractable === true
  return [
    { type: C.CKA_TOKEN, value: options.persistent === true },
    { type: C.CKA_PRIVATE, value: true },
    { type: C.CKA_SENSITIVE, value: !extractable },
    { type: C.CKA_EXTRACTABLE, value: extractable },
    ...naming(options, id),
  ]
}

/** Attributes of a public key object. */
export function publicAttributes(options: StorageOptions, id: Buffer | undefined): Template {
  return [{ type: C.CKA_TOKEN, value: options.persistent === true }, { type: C.CKA_PRIVATE, value: false }, ...naming(options, id)]
}

function naming(options: StorageOptions, id: Buffer | undefined): Template {
  const template: Template = []
  if (options.label !== undefined) template.push({ type: C.CKA_LABEL, value: options.label })
  if (id) template.push({ type: C.CKA_ID, value: id })
  return template
}

/** A caller's hex CKA_ID, checked. */
export function idFromHex(id: string | undefined): Buffer | undefined {
  if (id === undefined) return undefined
  if (typeof id !== 'string' || !/^([0-9a-f]{2})+$/i.test(id)) throw new TypeError('key id must be an even-length hex string')
  return Buffer.from(id, 'hex')
}
