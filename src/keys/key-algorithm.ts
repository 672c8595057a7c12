/**
 * Which WebCrypto algorithm a token key is used with: the caller's choice (JOSE name or WebCrypto
 * algorithm) checked against what the key is, or the key's default.
 */
import { canonicalName, hashName, toDictionary } from '../webcrypto/algorithm.js'
import { KEY_KINDS, type KeyAlgorithmChoice } from './crypto-keys.js'
import { invalidAccess } from '../webcrypto/errors.js'
import { SIGNATURE_ALGORITHMS } from '../webcrypto/algorithms/index.js'
import { JOSE_ALGORITHMS, defaultJoseAlgorithm } from './jose-algorithms.js'
import type { KeyDescription } from './key-description.js'

/**
 * @example
 * chooseAlgorithm('PS256', rsaKey)                       // { name: 'RSA-PSS', hash: 'SHA-256' }
 * chooseAlgorithm({ name: 'ECDSA' }, p256Key)            // { name: 'ECDSA', namedCurve: 'P-256' }
 * chooseAlgorithm(undefined, ed25519Key)                 // { name: 'Ed25519' }
 */
export function chooseAlgorithm(requested: unknown, key: KeyDescription): KeyAlgorithmChoice {
  const jose = typeof requested === 'string' ? JOSE_ALGORITHMS[requested] : undefined
  const fromDefault = requested === undefined ? JOSE_ALGORITHMS[defaultJoseAlgorithm(key.kty, key.curve?.name)] : undefined
  const wanted = jose ?? fromDefault ?? toDictionary(requested)
  const name = canonicalName(wanted.name, [...SIGNATURE_ALGORITHMS.keys()])
  const what = describe(key)
  if (KEY_KINDS[name] !== key.kty || (name === 'Ed25519') !== (key.curve?.name === 'Ed25519')) {
    throw invalidAccess(`${what} cannot be used with ${typeof requested === 'string' ? requested : name}`)
  }
  const namedCurve = (wanted as { namedCurve?: unknown }).namedCurve
  if (key.kty === 'EC' && namedCurve !== undefined && namedCurve !== key.curve?.name) {
    throw invalidAccess(`${what} cannot be used with ${typeof requested === 'string' ? requested : String(namedCurve)}`)
  }
  const needsHash = key.kty === 'RSA' || key.kty === 'oct'
  return {
    name,
    hash: needsHash ? hashName((wanted as { hash?: unknown }).hash ?? 'SHA-256') : undefined,
    namedCurve: key.kty === 'EC' ? key.curve!.name : undefined,
  }
}

/** 'RSA-2048 key "signer"', for messages. */
export function describe(key: KeyDescription): string {
  const size = key.curve ? key.curve.name : `${key.kty === 'oct' ? 'secret' : key.kty}-${key.bits}`
  return `${size} key ${key.label ? `"${key.label}"` : `id ${key.id.toString('hex')}`}`
}
