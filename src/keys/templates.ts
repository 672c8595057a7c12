/**
 * PKCS#11 attribute templates for keys made or imported on the token: where WebCrypto usages and
 * the caller's storage options become CKA_ attributes.
 */
import { TokenError } from '../errors.js'
import { C, type Template } from '../pkcs11/binding.js'
import type { SlotDescription } from '../pkcs11/slots.js'
import { notSupported } from '../webcrypto/errors.js'
import { isHexId } from './selector.js'

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
  sign: C.CKA_SIGN,
  verify: C.CKA_VERIFY,
  encrypt: C.CKA_ENCRYPT,
  decrypt: C.CKA_DECRYPT,
  wrapKey: C.CKA_WRAP,
  unwrapKey: C.CKA_UNWRAP,
  deriveKey: C.CKA_DERIVE,
  deriveBits: C.CKA_DERIVE,
}

/** The usages each kind of object can carry a CKA_ flag for. */
const OBJECT_USAGES: Record<'private' | 'public' | 'secret', readonly KeyUsage[]> = {
  private: ['sign', 'decrypt', 'unwrapKey', 'deriveBits'],
  public: ['verify', 'encrypt', 'wrapKey'],
  secret: ['sign', 'verify', 'encrypt', 'decrypt', 'wrapKey', 'unwrapKey', 'deriveBits'],
}

/**
 * What a module needs from a template beyond what the operation means, by what the module is.
 * Templates otherwise say only what is asked and leave the rest to the module's defaults: many
 * modules refuse attributes they do not expect (tpm2-pkcs11 ties sign to decrypt and verify to
 * encrypt in one TPM bit each, so an explicit CKA_DECRYPT false beside CKA_SIGN true fails).
 */
export interface ModulePolicy {
  /** Usage flags must be said false too: SoftHSM makes a key CKA_SIGN, CKA_DECRYPT ... unless told otherwise. */
  explicitFalse: boolean
  /** The module keeps no session objects (CKA_TOKEN false): tpm2-pkcs11. */
  noSessionObjects?: string
  /**
   * Curves the mechanism list claims and the module cannot sign on: tpm2-pkcs11 1.9 makes P-521
   * keys, writes their CKA_EC_POINT in bad DER and then fails C_SignInit on them (CKR_HOST_MEMORY).
   */
  unusableCurves: readonly string[]
}

/**
 * The policy for the module of `slot`, known by its C_GetInfo manufacturer (SoftHSM also by its
 * token's model, as p11-kit's remoting shows its own manufacturer instead).
 */
export function modulePolicy(slot: SlotDescription): ModulePolicy {
  const { manufacturer, description, version } = slot.module
  const tpm2Pkcs11 = manufacturer === 'tpm2-software.github.io'
  return {
    explicitFalse: manufacturer === 'SoftHSM' || slot.token?.model.startsWith('SoftHSM') === true,
    noSessionObjects: tpm2Pkcs11 ? `${description} (tpm2-pkcs11 ${version})` : undefined,
    unusableCurves: tpm2Pkcs11 && /^1\.[0-9]$/.test(version) ? ['P-521'] : [],
  }
}

/**
 * CKA_SIGN, CKA_DECRYPT ... true for `usages`; the others said false only where the module's
 * policy needs it.
 */
export function usageAttributes(usages: readonly KeyUsage[], object: 'private' | 'public' | 'secret', policy: ModulePolicy): Template {
  return OBJECT_USAGES[object]
    .map((usage) => ({ type: USAGE_FLAGS[usage], value: usages.includes(usage) || (usage === 'deriveBits' && usages.includes('deriveKey')) }))
    .filter((flag) => flag.value || policy.explicitFalse)
}

/**
 * A NotSupportedError before anything is sent, when a session object is asked of a module that
 * keeps none, or a key on a curve it cannot sign on.
 */
export function checkAsk(options: StorageOptions & { namedCurve?: string }, policy: ModulePolicy): void {
  if (options.namedCurve && policy.unusableCurves.includes(options.namedCurve)) {
    throw notSupported(`this module cannot sign with ${options.namedCurve} keys, though its mechanism list claims the size`)
  }
  if (options.persistent !== true && policy.noSessionObjects) {
    throw notSupported(`${policy.noSessionObjects} keeps no session objects: make the key with persistent: true (a token object, deleted with keys.delete)`)
  }
}

/**
 * Runs a call that sends a template; a token's refusal names what was asked, e.g.
 * "C_GenerateKeyPair failed: CKR_GENERAL_ERROR (template: RSA 2048, sign+verify, token object)".
 */
export async function describingTemplate<T>(asked: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (error) {
    if (!(error instanceof TokenError)) throw error
    throw new TokenError(error.code, error.returnValue, error.function, `template: ${asked}`)
  }
}

/** What a template asks, in words: "EC P-256, sign+verify, session object". */
export function describeAsk(key: string, usages: readonly KeyUsage[], options: StorageOptions): string {
  const parts = [key]
  if (usages.length) parts.push(usages.join('+'))
  parts.push(options.persistent === true ? 'token object' : 'session object')
  if (options.extractable === true) parts.push('extractable')
  return parts.join(', ')
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
  if (!isHexId(id)) throw new TypeError('key id must be an even-length hex string')
  return Buffer.from(id, 'hex')
}
