/**
 * Which WebCrypto algorithm a token key is used with: the caller's choice (JOSE name or WebCrypto
 * algorithm) checked against what the key is, or the key's default.
 */
import { canonicalName, hashName, toDictionary } from '../webcrypto/algorithm.js'
import { KEY_KINDS, type KeyAlgorithmChoice } from './crypto-keys.js'
import { invalidAccess } from '../webcrypto/errors.js'
import { TOKEN_ALGORITHMS } from '../webcrypto/algorithms/index.js'
import { JOSE_ALGORITHMS, defaultJoseAlgorithm } from './jose-algorithms.js'
import type { KeyDescription } from './key-description.js'

const NAMES = [...TOKEN_ALGORITHMS.keys()]
/** The algorithms of AES keys; HMAC takes generic secrets. */
const AES = ['AES-GCM', 'AES-CBC', 'AES-CTR', 'AES-KW']

/**
 * @example
 * chooseAlgorithm('PS256', rsaKey)                       // { name: 'RSA-PSS', hash: 'SHA-256' }
 * chooseAlgorithm({ name: 'ECDSA' }, p256Key)            // { name: 'ECDSA', namedCurve: 'P-256' }
 * chooseAlgorithm('ECDH-ES', x25519Key)                  // { name: 'X25519' }
 * chooseAlgorithm(undefined, ed25519Key)                 // { name: 'Ed25519' }
 */
export function chooseAlgorithm(requested: unknown, key: KeyDescription): KeyAlgorithmChoice {
  const jose = typeof requested === 'string' ? JOSE_ALGORITHMS[requested] : undefined
  const aesBits = key.secret === 'aes' ? key.bits : undefined
  const fromDefault = requested === undefined ? JOSE_ALGORITHMS[defaultJoseAlgorithm(key.kty, key.curve?.name, aesBits)] : undefined
  const wanted = jose ?? fromDefault ?? toDictionary(requested)
  let name = canonicalName(wanted.name, NAMES)
  // JOSE's ECDH-ES serves X25519 keys as well as the NIST curves.
  if ((jose ?? fromDefault) && name === 'ECDH' && key.curve?.name === 'X25519') name = 'X25519'
  const what = describe(key)
  const refused = () => invalidAccess(`${what} cannot be used with ${typeof requested === 'string' ? requested : name}`)
  if (KEY_KINDS[name] !== key.kty) throw refused()
  if (key.kty === 'OKP' && name !== key.curve?.name) throw refused()
  if (key.kty === 'oct' && AES.includes(name) !== (key.secret === 'aes')) throw refused()
  const namedCurve = (wanted as { namedCurve?: unknown }).namedCurve
  if (key.kty === 'EC' && namedCurve !== undefined && namedCurve !== key.curve?.name) {
    throw invalidAccess(`${what} cannot be used with ${typeof requested === 'string' ? requested : String(namedCurve)}`)
  }
  const length = (wanted as { length?: unknown }).length
  if (aesBits !== undefined && length !== undefined && length !== aesBits) throw refused()
  const needsHash = key.kty === 'RSA' || name === 'HMAC'
  return {
    name,
    hash: needsHash ? hashName((wanted as { hash?: unknown }).hash ?? 'SHA-256') : undefined,
    namedCurve: key.kty === 'EC' ? key.curve!.name : undefined,
  }
}

/** 'RSA-2048 key "signer"', for messages. */
export function describe(key: KeyDescription): string {
  const size = key.curve ? key.curve.name : `${key.kty === 'oct' ? (key.secret === 'aes' ? 'AES' : 'secret') : key.kty}-${key.bits}`
  return `${size} key ${key.label ? `"${key.label}"` : `id ${key.id.toString('hex')}`}`
}
