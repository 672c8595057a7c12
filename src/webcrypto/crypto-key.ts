/**
 * CryptoKey objects whose key material stays on the token. They carry the WebCrypto description
 * (type, algorithm, usages) that jose and other libraries inspect, and privately the token object.
 */
import { inspect, type InspectOptions } from 'node:util'
import type { Signer } from '../pkcs11/signer.js'
import { guardNodeSubtle } from './node-guard.js'

/** Where a key lives (what signs with it: one token, or a replica set), and the size of its results in bytes. */
export interface TokenObject {
  readonly signer: Signer
  /** Bytes of a signature made with the key (RSA: modulus length; EC: 2 x coordinate size). */
  readonly outputLength: number
  /** CKA_ALWAYS_AUTHENTICATE: every operation needs the key PIN. */
  readonly alwaysAuthenticate?: boolean
  /** The key PIN given when the key was fetched; a call may bring its own. */
  readonly keyPin?: string
  /** Reads an extractable key's value; absent for keys that never leave the token. */
  readonly exportJwk?: () => Promise<JsonWebKey>
}

interface KeyState {
  readonly object: TokenObject
  readonly type: KeyType
  readonly extractable: boolean
  readonly algorithm: KeyAlgorithm
  readonly usages: KeyUsage[]
}

/**
 * The state of every token key, by the key. Not private fields: a key is handed out as a Proxy
 * (see the constructor), and `#field in proxy` is false.
 */
const states = new WeakMap<object, KeyState>()

/** An empty handler: the Proxy changes nothing but what the structured clone algorithm does with it. */
const NO_TRAPS = Object.freeze({})

function stateOf(key: unknown): KeyState {
  const state = states.get(key as object)
  if (!state) throw new TypeError('Illegal invocation: not a token CryptoKey')
  return state
}

/**
 * A non-extractable CryptoKey held by a token. Its prototype chain holds Node's `CryptoKey.prototype`,
 * so `instanceof CryptoKey` is true for it wherever it goes, as for Node's own keys.
 *
 * @example
 * const { privateKey } = await hsm.keys.get({ label: 'signer' })
 * privateKey instanceof CryptoKey            // true: oauth4webapi and others check this
 * privateKey instanceof TokenCryptoKey       // true
 * Object.prototype.toString.call(privateKey) // '[object CryptoKey]', what jose checks
 */
export class TokenCryptoKey implements CryptoKey {
  constructor(object: TokenObject, type: KeyType, algorithm: KeyAlgorithm, usages: KeyUsage[], extractable = false) {
    // structuredClone and postMessage copy an ordinary object's own properties and silently drop
    // the rest; a Proxy they refuse (DataCloneError), as they must: the key is a handle on this
    // process's sessions, and no copy of it can sign anywhere else.
    const key = new Proxy(this, NO_TRAPS)
    const state = { object, type, extractable, algorithm: deepFreeze(algorithm), usages: Object.freeze([...usages]) as KeyUsage[] }
    states.set(key, state)
    states.set(this, state) // what inspect() sees with showProxy
    Object.freeze(this)
    guardNodeSubtle(isTokenKey)
    return key
  }

  get type(): KeyType {
    return stateOf(this).type
  }

  get extractable(): boolean {
    return stateOf(this).extractable
  }

  get algorithm(): KeyAlgorithm {
    return stateOf(this).algorithm
  }

  get usages(): KeyUsage[] {
    return stateOf(this).usages
  }

  /** What Node prints for its own CryptoKey (whose printer, on Node 24, refuses any other object). */
  [inspect.custom](depth: number, options: InspectOptions, print: typeof inspect): string {
    if (depth < 0) return 'CryptoKey {}'
    const { type, extractable, algorithm, usages } = stateOf(this)
    return `CryptoKey ${print({ type, extractable, algorithm, usages }, { ...options, depth: options.depth == null ? null : options.depth - 1 })}`
  }

  /** The token object behind `key`, or undefined when `key` is not a token key. */
  static objectOf(key: unknown): TokenObject | undefined {
    return states.get(key as object)?.object
  }
}

/** True for the keys of this library. */
export function isTokenKey(value: unknown): value is TokenCryptoKey {
  return states.has(value as object)
}

// Node's CryptoKey.prototype gives Symbol.toStringTag 'CryptoKey' and instanceof; its getters are
// enumerable (a for-in over a key lists them), so ours are too.
Object.setPrototypeOf(TokenCryptoKey.prototype, CryptoKey.prototype)
for (const name of ['type', 'extractable', 'algorithm', 'usages']) Object.defineProperty(TokenCryptoKey.prototype, name, { enumerable: true })

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    Object.values(value).forEach(deepFreeze)
    Object.freeze(value)
  }
  return value
}
