/**
 * The checks of `Pkcs11Crypto.open` options, done once, at open: a mistyped option fails there with
 * a ConfigurationError naming it, not later as a raw TypeError, a "within NaN ms", an unbounded
 * queue or a flush loop that never ends. PIN values are never echoed.
 */
import { ConfigurationError } from '../errors.js'
import { SESSION_KEY_COPIES } from '../pkcs11/dispatch/session-copies.js'
import { IN_PLACE_MODES } from '../pkcs11/dispatch/worker-pool.js'

const STRINGS = ['library', 'pin', 'pinFile', 'config', 'uri', 'libraryParameters'] as const
const TOKEN_SELECTORS = ['label', 'serial', 'slotIndex', 'slotId'] as const

/** What each numeric option must be, and its meaning for the message. */
const NUMBERS: Record<string, { min: number; integer: boolean; what: string }> = {
  maxSessions: { min: 1, integer: true, what: 'a whole number of sessions, at least 1' },
  timeout: { min: 1, integer: false, what: 'a number of milliseconds, at least 1' },
  maxQueue: { min: 1, integer: true, what: 'a whole number of calls, at least 1' },
  searchCacheMs: { min: 0, integer: false, what: 'a number of milliseconds, 0 or more' },
}

/** Options that take one of a few words. */
const CHOICES: Record<string, readonly string[]> = {
  inPlace: IN_PLACE_MODES,
  sessionKeyCopies: SESSION_KEY_COPIES,
}

/**
 * Throws a ConfigurationError for the first option that is not what it must be.
 *
 * @example
 * checkOpenOptions({ maxSessions: NaN }) // ConfigurationError: maxSessions must be a whole number of sessions, at least 1 (got NaN)
 */
export function checkOpenOptions(options: Record<string, unknown>): void {
  if (typeof options !== 'object' || options === null) throw new ConfigurationError('open() takes an options object')
  for (const name of STRINGS) {
    const value = options[name]
    if (value !== undefined && typeof value !== 'string') {
      throw new ConfigurationError(`${name} must be a string (got ${kind(value)})`)
    }
  }
  for (const [name, rule] of Object.entries(NUMBERS)) {
    const value = options[name]
    if (value === undefined) continue
    const valid = typeof value === 'number' && Number.isFinite(value) && value >= rule.min && (!rule.integer || Number.isInteger(value))
    if (!valid) throw new ConfigurationError(`${name} must be ${rule.what} (got ${shown(value)})`)
  }
  for (const [name, words] of Object.entries(CHOICES)) {
    const value = options[name]
    if (value !== undefined && !words.includes(value as string)) throw new ConfigurationError(`${name} must be ${words.map((w) => `'${w}'`).join(', ')} (got ${shown(value)})`)
  }
  if (options.token !== undefined) checkTokenSelector(options.token)
  if (options.env !== undefined && (typeof options.env !== 'object' || options.env === null)) {
    throw new ConfigurationError(`env must be an object of environment variables (got ${kind(options.env)})`)
  }
}

function checkTokenSelector(token: unknown): void {
  const expected = 'token must be one of { label }, { serial }, { slotIndex } or { slotId }'
  if (typeof token !== 'object' || token === null) throw new ConfigurationError(`${expected} (got ${kind(token)})`)
  const given = Object.keys(token).filter((key) => (token as Record<string, unknown>)[key] !== undefined)
  if (given.length !== 1 || !TOKEN_SELECTORS.includes(given[0] as (typeof TOKEN_SELECTORS)[number])) {
    throw new ConfigurationError(`${expected} (got ${given.length ? `{ ${given.join(', ')} }` : '{}'})`)
  }
  const [name] = given
  const value = (token as Record<string, unknown>)[name]
  if (name === 'label' || name === 'serial') {
    if (typeof value !== 'string' || value === '') throw new ConfigurationError(`token.${name} must be a non-empty string (got ${shown(value)})`)
    return
  }
  const wholeNumber = (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) || (typeof value === 'bigint' && value >= 0n)
  if (!wholeNumber || (name === 'slotIndex' && typeof value === 'bigint')) {
    throw new ConfigurationError(`token.${name} must be a whole number, 0 or more (got ${shown(value)})`)
  }
}

function kind(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`
}

function shown(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint') return String(value)
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value)
  return kind(value)
}
