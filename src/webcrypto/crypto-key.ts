/**
 * CryptoKey objects whose key material stays on the token. They carry the WebCrypto description
 * (type, algorithm, usages) that jose and other libraries inspect, and privately the token object.
 */
import type { Signer } from '../pkcs11/signer.js'

/** Where a key lives (what signs with it: one token, or a replica set), and the size of its results in bytes. */
export interface TokenObject {
  readonly signer: Signer
  /** Bytes of a signature made with the key (RSA: modulus length; EC: 2 x coordinate size). */
  readonly outputLength: number
  /** CKA_ALWAYS_AUTHENTICATE: every operation needs the key PIN. */
  readonly alwaysAuthenticate?: boolean
  /** The key PIN given when the key was fetched; a call may bring its own. */
  readonly keyPin?: string
  /** RSA-OAEP: the token was seen to honour labels (SoftHSM ignores them: a label is refused). */
  readonly oaepLabels?: boolean
  /** RSA-OAEP: the token does the RSA private operation (CKM_RSA_X_509), the OAEP decoding is done here (opt-in). */
  readonly oaepRaw?: boolean
  /** Reads an extractable key's value; absent for keys that never leave the token. */
  readonly exportJwk?: () => Promise<JsonWebKey>
}

/**
 * A non-extractable CryptoKey held by a token.
 *
 * @example
 * const { privateKey } = await hsm.keys.get({ label: 'signer' })
 * privateKey instanceof TokenCryptoKey       // true
 * Object.prototype.toString.call(privateKey) // '[object CryptoKey]', what jose checks
 */
export class TokenCryptoKey implements CryptoKey {
  readonly type: KeyType
  readonly extractable: boolean
  readonly algorithm: KeyAlgorithm
  readonly usages: KeyUsage[]
  readonly #object: TokenObject

  constructor(object: TokenObject, type: KeyType, algorithm: KeyAlgorithm, usages: KeyUsage[], extractable = false) {
    this.#object = object
    this.type = type
    this.extractable = extractable
    this.algorithm = deepFreeze(algorithm)
    this.usages = usages
    Object.freeze(this)
  }

  get [Symbol.toStringTag](): string {
    return 'CryptoKey'
  }

  /** The token object behind `key`, or undefined when `key` is not a token key. */
  static objectOf(key: unknown): TokenObject | undefined {
    return key instanceof Object && #object in key ? (key as TokenCryptoKey).#object : undefined
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    Object.values(value).forEach(deepFreeze)
    Object.freeze(value)
  }
  return value
}
