/**
 * WebCrypto's algorithm normalization, for the algorithms served by a token: names are matched
 * case-insensitively and a hash may be a string or `{ name }`.
 */
import { notSupported } from './errors.js'

export type HashName = 'SHA-1' | 'SHA-256' | 'SHA-384' | 'SHA-512'
export type NamedCurve = 'P-256' | 'P-384' | 'P-521'

const HASH_NAMES: readonly HashName[] = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512']
export const NAMED_CURVES: readonly NamedCurve[] = ['P-256', 'P-384', 'P-521']

/** An algorithm as a caller may write it: a name, or a dictionary with one. */
export type AlgorithmInput = string | { name: string; [member: string]: unknown }

/** The normalized form: canonical `name`, other members as given. */
export interface NormalizedAlgorithm {
  name: string
  [member: string]: unknown
}

/** Canonical spelling of `name` among `known`, or NotSupportedError. */
export function canonicalName(name: unknown, known: readonly string[]): string {
  if (typeof name !== 'string') throw new TypeError('algorithm name must be a string')
  if (known.includes(name)) return name
  const found = known.find((candidate) => candidate.toUpperCase() === name.toUpperCase())
  if (!found) throw notSupported(`${name} is not supported here`)
  return found
}

/** `{ name }` from a string or a dictionary; TypeError when neither. */
export function toDictionary(algorithm: unknown): NormalizedAlgorithm {
  if (typeof algorithm === 'string') return { name: algorithm }
  if (algorithm !== null && typeof algorithm === 'object' && typeof (algorithm as { name?: unknown }).name === 'string') {
    return { ...(algorithm as NormalizedAlgorithm) }
  }
  throw new TypeError('algorithm must be a string or an object with a name')
}

/** A hash member, normalized to its canonical name. */
export function hashName(hash: unknown): HashName {
  if (hash === undefined) throw new TypeError('algorithm.hash is required')
  return canonicalName(toDictionary(hash).name, HASH_NAMES) as HashName
}

/** Node's name of each hash (for createHash, crypto.hash, publicEncrypt's oaepHash). */
export const NODE_HASHES: Record<HashName, string> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' }

/** Bytes of a hash's output. */
export function hashLength(hash: HashName): number {
  return { 'SHA-1': 20, 'SHA-256': 32, 'SHA-384': 48, 'SHA-512': 64 }[hash]
}

/** The algorithm's `public` member (the ECDH / X25519 peer key), which may be a token key. */
export function publicMember(algorithm: unknown): unknown {
  return algorithm !== null && typeof algorithm === 'object' ? (algorithm as { public?: unknown }).public : undefined
}
