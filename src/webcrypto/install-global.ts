/**
 * Makes `globalThis.crypto` route token keys to their tokens and everything else to Node's own
 * WebCrypto, so code that uses the global (jose does, at each call) works with token keys unchanged.
 */
import { webcrypto } from 'node:crypto'
import { routingSubtle } from './subtle.js'

/** One routing crypto serves every token, so installing for a second token only counts a user. */
const routingCrypto = Object.freeze({
  subtle: routingSubtle,
  getRandomValues: <T extends ArrayBufferView | null>(array: T): T => webcrypto.getRandomValues(array as never) as T,
  randomUUID: () => webcrypto.randomUUID(),
  [Symbol.toStringTag]: 'Crypto',
})

let users = 0
let original: PropertyDescriptor | undefined

/**
 * Installs the routing crypto as `globalThis.crypto`; the returned function uninstalls it (once).
 * The original comes back when every install has been undone.
 *
 * @example
 * const uninstall = installGlobal()
 * const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'ES256' }).sign(tokenKey)
 * uninstall()
 */
export function installGlobal(): () => void {
  if (users++ === 0) {
    original = Object.getOwnPropertyDescriptor(globalThis, 'crypto')
    Object.defineProperty(globalThis, 'crypto', { value: routingCrypto, configurable: true, enumerable: true, writable: true })
  }
  let installed = true
  return () => {
    if (!installed) return
    installed = false
    if (--users > 0) return
    if (original) Object.defineProperty(globalThis, 'crypto', original)
    else delete (globalThis as { crypto?: unknown }).crypto
  }
}
