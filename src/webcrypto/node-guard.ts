/**
 * Node's own SubtleCrypto, given a token key, fails deep inside (Node 20: an OperationError caused
 * by "Cannot read properties of undefined (reading 'Symbol(kHandle)')"; Node 24: "2nd argument is
 * not of type CryptoKey"). Code reaches it with a token key when it kept `crypto.subtle` from before
 * installGlobal(), or runs without it. Once a token key exists, each of Node's SubtleCrypto methods
 * first looks for one among its arguments (and, when deriving, in the algorithm's `public` member)
 * and rejects with a TokenKeyToNodeError that says what to use instead; every other call goes to
 * Node unchanged.
 */
import { webcrypto } from 'node:crypto'
import { publicMember } from './algorithm.js'
import { TokenKeyToNodeError } from './errors.js'

/** The methods that read a key in their algorithm's `public` member; the others ignore it, as Node does. */
const DERIVING = new Set(['deriveBits', 'deriveKey'])

let guarded = false

/** Wraps the methods of Node's SubtleCrypto.prototype (once per process) to refuse token keys. */
export function guardNodeSubtle(isTokenKey: (value: unknown) => boolean): void {
  if (guarded) return
  guarded = true
  const prototype = Object.getPrototypeOf(webcrypto.subtle) as Record<string, unknown>
  for (const [name, descriptor] of Object.entries(Object.getOwnPropertyDescriptors(prototype))) {
    const method = descriptor.value
    if (name === 'constructor' || typeof method !== 'function') continue
    const wrapped = {
      [name](this: unknown, ...args: unknown[]): unknown {
        if (args.some(isTokenKey) || (DERIVING.has(name) && isTokenKey(publicMember(args[0])))) return Promise.reject(new TokenKeyToNodeError(name))
        return Reflect.apply(method, this, args)
      },
    }[name]
    Object.defineProperty(wrapped, 'length', { value: method.length })
    Object.defineProperty(prototype, name, { ...descriptor, value: wrapped })
  }
}
