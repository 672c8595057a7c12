// A seeded fuzz of every SubtleCrypto method of `hsm.subtle`: 10,000 random calls (algorithms,
// keys, buffers, usages, formats; valid, odd and wrong) on a fresh SoftHSM token. Every call must
// settle within 10 s, every rejection must be a TypeError or one of the DOMExceptions WebCrypto
// names, nothing may go unhandled, and afterwards the token still signs correctly with a bounded
// number of sessions.
//
// Deterministic: call i is made from its own generator, seeded by (seed, i). The seed is printed;
// FUZZ_SEED=<n> picks another, FUZZ_CALLS=<n> changes the count, FUZZ_ONLY=<i>[,<j>...] replays
// single calls (their descriptions are printed with every failure).
import assert from 'node:assert/strict'
import { createHmac, verify as nodeVerify, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'

const softhsm = freshSoftHsm()
softhsm.initToken('fuzz')
const provisioned = provisionTestKeys(softhsm, 'fuzz')
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_2026) >>> 0
const CALLS = Number(process.env.FUZZ_CALLS ?? 10_000)
const ONLY = process.env.FUZZ_ONLY ? process.env.FUZZ_ONLY.split(',').map(Number) : undefined
const CONCURRENCY = 32
const SETTLE_MS = 10_000
const MAX_SESSIONS = 6
/** Of all calls, about this share make a key on the token with valid parameters. */
const TOKEN_KEY_RATE = 1 / 200

const SPEC_ERRORS = new Set([
  'NotSupportedError',
  'InvalidAccessError',
  'DataError',
  'OperationError',
  'SyntaxError',
  'QuotaExceededError',
  'AbortError',
  'InvalidStateError',
  'NotAllowedError',
])

const unhandled = { rejections: [], exceptions: [] }
process.on('unhandledRejection', (reason) => {
  unhandled.rejections.push(reason)
})
process.on('uncaughtException', (error) => {
  unhandled.exceptions.push(error)
})

// ---------------------------------------------------------------------------------------------
// Randomness

function mix32(a, b) {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d)
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b)
  return (h ^ (h >>> 16)) >>> 0
}

/** mulberry32, with the helpers a fuzzer wants. */
function generator(seed) {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const r = {
    next,
    int: (n) => Math.floor(next() * n),
    chance: (p) => next() < p,
    pick: (list) => list[Math.floor(next() * list.length)],
    /** A random element that may itself be a function of r. */
    any: (list) => {
      const v = r.pick(list)
      return typeof v === 'function' ? v(r) : v
    },
    bytes(n) {
      const out = new Uint8Array(n)
      for (let i = 0; i < n; i++) out[i] = (next() * 256) | 0
      return out
    },
  }
  return r
}

// ---------------------------------------------------------------------------------------------
// Descriptions of values, for the report of a failing call

const names = new WeakMap()
const named = (value, name) => {
  names.set(value, name)
  return value
}

function show(value, depth = 0) {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...(${value.length})` : value)
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value !== 'object' && typeof value !== 'function') return String(value)
  if (names.has(value)) return names.get(value)
  if (value instanceof ArrayBuffer) return `ArrayBuffer(${value.byteLength})`
  if (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer) return `SharedArrayBuffer(${value.byteLength})`
  if (ArrayBuffer.isView(value)) {
    const shared = value.buffer instanceof SharedArrayBuffer ? ' over SharedArrayBuffer' : ''
    const head = value.byteLength <= 8 ? ` [${[...new Uint8Array(value.buffer, value.byteOffset, value.byteLength)]}]` : ''
    return `${value.constructor.name}(${value.byteLength} bytes${value.byteOffset ? ` at ${value.byteOffset}` : ''}${shared})${head}`
  }
  if (depth > 3) return '{...}'
  if (Array.isArray(value)) return `[${value.map((v) => show(v, depth + 1)).join(', ')}]`
  const tag = value[Symbol.toStringTag] ? `/*${value[Symbol.toStringTag]}*/ ` : ''
  return `${tag}{ ${Object.entries(value)
    .map(([k, v]) => `${k}: ${show(v, depth + 1)}`)
    .join(', ')} }`
}

// ---------------------------------------------------------------------------------------------
// Building blocks of calls

const ALGORITHM_NAMES = [
  'RSASSA-PKCS1-v1_5',
  'RSA-PSS',
  'RSA-OAEP',
  'ECDSA',
  'ECDH',
  'Ed25519',
  'X25519',
  'Ed448',
  'X448',
  'HMAC',
  'AES-GCM',
  'AES-CBC',
  'AES-CTR',
  'AES-KW',
  'SHA-1',
  'SHA-256',
  'SHA-384',
  'SHA-512',
  'HKDF',
  'PBKDF2',
]
const USAGES = ['sign', 'verify', 'encrypt', 'decrypt', 'deriveKey', 'deriveBits', 'wrapKey', 'unwrapKey']
const FORMATS = ['raw', 'pkcs8', 'spki', 'jwk']

function oddName(r, name) {
  switch (r.int(9)) {
    case 0:
      return name.toLowerCase()
    case 1:
      return name.toUpperCase()
    case 2:
      return [...name].map((c) => (r.chance(0.5) ? c.toLowerCase() : c.toUpperCase())).join('')
    case 3: {
      const i = r.int(name.length)
      return name.slice(0, i) + name.slice(i + 1)
    } // a letter dropped
    case 4:
      return `${name}${r.pick(['X', ' ', '\0', '-', '1'])}`
    case 5:
      return ` ${name}`
    case 6:
      return r.pick(['', 'ES256', 'RS256', 'MD5', 'SHA3-256', 'EdDSA', 'secp256k1', 'Ed25519ph', 'constructor', '__proto__'])
    case 7:
      return name.replace('-', '_')
    default:
      return name
  }
}

function algorithmName(r) {
  if (r.chance(0.06)) return r.pick([42, null, undefined, true, {}, ['ECDSA'], { name: 'ECDSA' }, 7n])
  const name = r.pick(ALGORITHM_NAMES)
  return r.chance(0.7) ? name : oddName(r, name)
}

const HASHES = [
  'SHA-256',
  'SHA-384',
  'SHA-512',
  'SHA-1',
  'sha-256',
  'Sha-512',
  'MD5',
  'SHA3-256',
  'SHA-224',
  '',
  { name: 'SHA-256' },
  { name: 'sha-384' },
  { name: 'MD5' },
  {},
  { name: 5 },
  null,
  5,
  undefined,
  'SHA256',
]
const CURVES = ['P-256', 'P-384', 'P-521', 'p-256', 'P-192', 'secp256k1', 'Ed25519', 'X25519', '', 5, null, undefined, { name: 'P-256' }]

function signalOf(r) {
  switch (r.int(5)) {
    case 0:
      return named(AbortSignal.abort(), 'AbortSignal.abort()')
    case 1:
      return named(AbortSignal.timeout(r.pick([0, 1, 5])), 'AbortSignal.timeout(...)')
    case 2:
      return named(new AbortController().signal, 'new AbortController().signal')
    case 3:
      return named(AbortSignal.abort(r.pick(['a string reason', 42, null])), 'AbortSignal.abort(<non-error reason>)')
    default:
      return r.pick([{}, 'signal', 1, null])
  }
}

function bytesOf(r, n) {
  return r.bytes(n)
}

const HUGE = new Uint8Array(1 << 20).fill(0xa5)

/** A BufferSource of any kind and size, or something that is not one. */
function data(r) {
  if (r.chance(0.003)) {
    const view = r.pick([() => HUGE, () => HUGE.buffer, () => new DataView(HUGE.buffer), () => HUGE.subarray(1)])
    return view()
  }
  if (r.chance(0.08)) return r.pick(['a string', '', 0, 12, null, undefined, {}, [1, 2, 3], { length: 3, 0: 1 }, true, 1n])
  const n = r.pick([0, 0, 1, 3, 16, 32, 33, 64, 100, 256, 1000, 4096, r.int(70000)])
  const bytes = bytesOf(r, n)
  switch (r.int(11)) {
    case 0:
      return bytes.buffer
    case 1:
      return new DataView(bytes.buffer)
    case 2:
      return Buffer.from(bytes)
    case 3: {
      const sab = new SharedArrayBuffer(n)
      new Uint8Array(sab).set(bytes)
      return r.chance(0.5) ? sab : new Uint8Array(sab)
    }
    case 4:
      return new Int32Array(bytes.buffer, 0, n >> 2)
    case 5:
      return new Float64Array(bytes.buffer, 0, n >> 3)
    case 6: {
      const big = new Uint8Array(n + 7)
      big.set(bytes, 3)
      return big.subarray(3, 3 + n)
    }
    case 7:
      return new Uint16Array(bytes.buffer, 0, n >> 1)
    default:
      return bytes
  }
}

function usages(r) {
  if (r.chance(0.1)) return r.pick([[], 'sign', null, undefined, ['Sign'], [42], ['sign', 'sign'], [''], {}, ['bogus']])
  return USAGES.filter(() => r.chance(0.25))
}

const format = (r) => (r.chance(0.85) ? r.pick(FORMATS) : r.pick(['RAW', 'der', 'pem', '', 42, null, undefined, 'Jwk', {}]))
const extractable = (r) => (r.chance(0.9) ? r.chance(0.5) : r.pick([1, 0, 'yes', undefined, null]))

// ---------------------------------------------------------------------------------------------
// The call maker. `pool` holds the keys; `material` valid key data for importKey.

function algorithm(r, pool, forName) {
  if (r.chance(0.05)) return r.pick([null, undefined, 42, true, [], {}, 'ECDSA', '', 9n])
  const name = forName ?? algorithmName(r)
  if (r.chance(0.2)) return name
  const base = typeof name === 'string' ? name.toUpperCase() : ''
  const a = { name }
  const maybe = (member, value) => {
    if (r.chance(0.8)) a[member] = value(r)
  }
  if (/RSA|ECDSA|HMAC|HKDF|PBKDF2/.test(base)) maybe('hash', (q) => q.pick(HASHES))
  if (/EC/.test(base)) maybe('namedCurve', (q) => q.pick(CURVES))
  if (base === 'RSA-PSS') maybe('saltLength', (q) => q.pick([0, 20, 32, 48, 64, 222, 223, -1, 1.5, '32', null, undefined, 2 ** 32, 1e6, NaN]))
  if (/^RSA/.test(base)) {
    maybe('modulusLength', (q) => q.pick([undefined, '2048', 0, 512, 1023, 2048.5, -2048, NaN, 2 ** 31, 16392]))
    maybe('publicExponent', (q) => q.pick([new Uint8Array([1, 0, 1]), [1, 0, 1], 65537, new Uint8Array([]), new Uint8Array([1]), undefined]))
  }
  if (base === 'RSA-OAEP') maybe('label', (q) => (q.chance(0.5) ? data(q) : q.pick(['a label', 5, null])))
  if (/AES|HMAC/.test(base)) maybe('length', (q) => q.pick([128, 192, 256, 0, 8, 7, 512, -128, '256', null, undefined, 1.5, 2 ** 32 + 128]))
  if (/AES-(GCM|CBC)/.test(base)) maybe('iv', (q) => (q.chance(0.7) ? bytesOf(q, q.pick([0, 1, 12, 16, 17, 256])) : data(q)))
  if (base === 'AES-GCM') {
    maybe('tagLength', (q) => q.pick([96, 104, 112, 120, 128, 32, 64, 0, 7, 256, '128', undefined]))
    maybe('additionalData', data)
  }
  if (base === 'AES-CTR') {
    maybe('counter', (q) => (q.chance(0.7) ? bytesOf(q, q.pick([16, 15, 0, 32])) : data(q)))
    maybe('length', (q) => q.pick([0, 1, 64, 128, 129, -1, '64', undefined]))
  }
  if (/HKDF|PBKDF2/.test(base)) {
    maybe('salt', (q) => (q.chance(0.7) ? bytesOf(q, q.pick([0, 16, 64])) : data(q)))
    maybe('info', (q) => (q.chance(0.7) ? bytesOf(q, q.pick([0, 16])) : data(q)))
    maybe('iterations', (q) => q.pick([1, 10, 1000, 0, -1, '100', 1.5, undefined, 2 ** 32 + 1]))
  }
  if (/ECDH|X25519|X448/.test(base)) maybe('public', (q) => q.pick(pool.all))
  // The token's extra members, and junk.
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'label' does not exist on type '{ name: any; }'.
  if (r.chance(0.15)) a.label = r.pick(['fuzz-key', '', 5, null, {}])
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'id' does not exist on type '{ name: any; }'.
  if (r.chance(0.1)) a.id = r.pick(['0a0b', 'xyz', '0', 42, '', null])
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'persistent' does not exist on type '{ name: any; }'.
  if (r.chance(0.05)) a.persistent = r.pick([false, undefined, 0, 'no'])
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'signal' does not exist on type '{ name: any; }'.
  if (r.chance(0.1)) a.signal = signalOf(r)
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'timeout' does not exist on type '{ name: any; }'.
  if (r.chance(0.08)) a.timeout = r.pick([0, -1, 1e-9, 1, 'x', 10_000, Infinity, NaN])
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'keyPin' does not exist on type '{ name: any; }'.
  if (r.chance(0.05)) a.keyPin = r.pick([PIN, '', 5, null])
  if (r.chance(0.05)) a[r.pick(['foo', 'Name', 'hash2', '__proto__x'])] = r.pick([1, 'x', null, {}])
  return a
}

/** Valid parameters for keys the token can make quickly (RSA kept at 1024 bits). */
const GENERATE_OK = [
  [{ name: 'ECDSA', namedCurve: 'P-256' }, ['sign', 'verify']],
  [{ name: 'ECDSA', namedCurve: 'P-384' }, ['sign']],
  [{ name: 'ECDSA', namedCurve: 'P-521' }, ['sign', 'verify']],
  [{ name: 'ECDH', namedCurve: 'P-256' }, ['deriveBits']],
  [{ name: 'Ed25519' }, ['sign', 'verify']],
  [{ name: 'HMAC', hash: 'SHA-256' }, ['sign', 'verify']],
  [{ name: 'HMAC', hash: 'SHA-512', length: 512 }, ['sign']],
  [{ name: 'AES-GCM', length: 256 }, ['encrypt', 'decrypt']],
  [{ name: 'AES-CBC', length: 128 }, ['decrypt']],
  [{ name: 'AES-CTR', length: 192 }, ['encrypt']],
  [{ name: 'AES-KW', length: 128 }, ['wrapKey', 'unwrapKey']],
  [{ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, ['sign', 'verify']],
  [{ name: 'RSA-PSS', hash: 'SHA-384', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, ['sign']],
  [{ name: 'RSA-OAEP', hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, ['decrypt', 'encrypt']],
]

const KIND = {
  'RSASSA-PKCS1-v1_5': 'rsa',
  'RSA-PSS': 'rsa',
  'RSA-OAEP': 'rsa',
  ECDSA: 'ec',
  ECDH: 'ec',
  Ed25519: 'okp',
  HMAC: 'hmac',
  'AES-GCM': 'aes',
  'AES-CBC': 'aes',
  'AES-CTR': 'aes',
  'AES-KW': 'aes',
}
/** A usage each kind of key may not have. */
const FOREIGN_USAGE = { rsa: 'deriveKey', ec: 'encrypt', okp: 'decrypt', hmac: 'encrypt', aes: 'sign' }

/**
 * Ways to spoil valid parameters that the library must refuse before the token makes anything
 * (or, for a few, that the token refuses at once): the one member named is wrong.
 */
function poison(r, params, usageList, kind, forImport = false) {
  const p = { ...params }
  const choices = [
    () => ({ params: r.pick([null, undefined, 42, [], {}, true]), usages: usageList }),
    () => {
      p.name = r.pick(['ECDSAX', '', 'X25519', 'SHA-256', 'HKDF', 'PBKDF2', 'ES256', 42, null, `${p.name} `])
      return { params: p, usages: usageList }
    },
    () => ({ params: p, usages: r.pick([[], [FOREIGN_USAGE[kind]], ['bogus'], 'sign', null, undefined, [42], ['Sign']]) }),
    () => {
      p.label = r.pick([42, {}, null, true])
      return { params: p, usages: usageList }
    },
    () => {
      p.id = r.pick(['xyz', '0', '0a0', 42, {}])
      return { params: p, usages: usageList }
    },
  ]
  if (kind === 'rsa' || kind === 'hmac')
    choices.push(() => {
      p.hash = r.pick([undefined, 'MD5', 'SHA3-256', { name: 5 }, null, '', 'SHA256'])
      return { params: p, usages: usageList }
    })
  if (kind === 'ec')
    choices.push(() => {
      p.namedCurve = r.pick([undefined, 'P-192', 'secp256k1', 5, null, 'Ed25519'])
      return { params: p, usages: usageList }
    })
  if (kind === 'rsa' && !forImport) {
    choices.push(() => {
      p.modulusLength = r.pick([undefined, '1024', 0, 512, 1023, 1.5, NaN, -1024, 2 ** 31, 16392])
      return { params: p, usages: usageList }
    })
    choices.push(() => {
      p.publicExponent = r.pick([undefined, [1, 0, 1], 65537, new Uint8Array([]), new Uint8Array([1]), new Uint8Array([2])])
      return { params: p, usages: usageList }
    })
  }
  if (kind === 'aes' && !forImport)
    choices.push(() => {
      p.length = r.pick([undefined, 0, 64, 512, '128', null, 129])
      return { params: p, usages: usageList }
    })
  if (kind === 'hmac' && !forImport)
    choices.push(() => {
      p.length = r.pick([0, -8, 7, '256', null, 2 ** 31, 12.5])
      return { params: p, usages: usageList }
    })
  return { ...r.pick(choices)(), poisoned: true }
}

/** Extra storage and junk members that do not spoil valid parameters. */
function harmless(r, params) {
  const p = { ...params }
  if (r.chance(0.3)) p.label = r.pick(['fuzz', '', 'ünïcødé', 'x'.repeat(200)])
  if (r.chance(0.2)) p.id = r.pick(['0a', 'ff00ff', 'DEADBEEF'])
  if (r.chance(0.2)) p.persistent = false
  if (r.chance(0.2)) p.extra = r.pick([1, null, 'x'])
  if (r.chance(0.2) && typeof p.name === 'string') p.name = r.chance(0.5) ? p.name.toLowerCase() : p.name.toUpperCase()
  return p
}

function generateCall(r) {
  const [params, usageList] = r.pick(GENERATE_OK)
  const kind = KIND[params.name]
  const valid = r.chance(TOKEN_KEY_RATE * 6) // generate/import are 2 of 12 methods: about 1 call in 200 overall
  const call = valid ? { params: harmless(r, params), usages: usageList, poisoned: false } : poison(r, harmless(r, params), usageList, kind)
  return { args: [call.params, extractable(r), call.usages], poisoned: call.poisoned }
}

function importCall(r, material) {
  const m = r.pick(material)
  const kind = KIND[m.algorithm.name]
  const valid = r.chance(TOKEN_KEY_RATE * 6)
  let fmt = m.format
  let keyData = m.data
  let call
  if (valid) {
    call = { params: harmless(r, m.algorithm), usages: m.usages, poisoned: false }
  } else if (r.chance(0.35)) {
    // Spoiled key data, with good parameters.
    call = { params: m.algorithm, usages: m.usages, poisoned: true }
    const spoil = r.int(6)
    if (spoil === 0) fmt = r.pick(['RAW', 'der', 'pem', '', 42, null, undefined])
    else if (spoil === 1) keyData = fmt === 'jwk' ? r.pick([new Uint8Array(8), 'jwk', null, 42, [1]]) : r.pick(['bytes', null, 42, {}, [1, 2]])
    else if (spoil === 2 && fmt !== 'jwk') keyData = m.data.subarray(0, r.int(m.data.length))
    else if (spoil === 2) {
      keyData = { ...m.data }
      delete keyData[r.pick({ RSA: ['n', 'e'], EC: ['x', 'crv'], OKP: ['x', 'crv'], oct: ['k'] }[m.data.kty])]
    } else if (spoil === 3) fmt = fmt === 'pkcs8' ? 'spki' : fmt === 'spki' ? 'pkcs8' : fmt === 'raw' ? 'pkcs8' : 'raw'
    else if (spoil === 4 && fmt === 'jwk') keyData = { ...m.data, kty: r.pick(['RSA', 'EC', 'OKP', 'oct', 'XX', undefined].filter((k) => k !== m.data.kty)) }
    else if (spoil === 4) keyData = r.bytes(r.pick([0, 1, 5, 64]))
    else {
      // key data of another kind of key
      const other = r.pick(material.filter((x) => KIND[x.algorithm.name] !== kind && x.format === fmt))
      if (other) keyData = other.data
      else fmt = 42
    }
    // Raw secret key bytes stay valid when their length does (an HMAC key of any length but 0).
    if (fmt === 'raw' && keyData instanceof Uint8Array && m.format === 'raw') {
      call.poisoned = kind === 'aes' ? ![16, 24, 32].includes(keyData.length) : keyData.length === 0
    }
  } else {
    call = poison(r, harmless(r, m.algorithm), m.usages, kind, true)
  }
  // A public key may be imported with no usages at all.
  if (m.format === 'spki' && Array.isArray(call.usages) && call.usages.length === 0) call.poisoned = false
  return { args: [fmt, keyData, call.params, extractable(r), call.usages], poisoned: call.poisoned }
}

const METHODS = ['sign', 'verify', 'encrypt', 'decrypt', 'digest', 'generateKey', 'deriveKey', 'deriveBits', 'importKey', 'exportKey', 'wrapKey', 'unwrapKey']

/** A matching algorithm for a key, so that calls often get past the first checks. */
function algorithmFor(r, key, pool) {
  const alg = key && typeof key === 'object' && key.algorithm && typeof key.algorithm === 'object' ? key.algorithm : undefined
  // @ts-expect-error TS2554 (converted from JavaScript): Expected 3 arguments, but got 2.
  if (!alg || typeof alg.name !== 'string' || r.chance(0.15)) return algorithm(r, pool)
  const a = algorithm(r, pool, alg.name)
  if (typeof a === 'object' && a !== null && r.chance(0.8)) {
    const { name } = alg
    if (name === 'ECDSA') a.hash = r.pick(['SHA-256', 'SHA-384', 'SHA-512', 'SHA-1'])
    if (name === 'RSA-PSS') a.saltLength = r.pick([0, 32, 48, 64])
    if (name === 'AES-GCM') {
      a.iv = bytesOf(r, 12)
      delete a.tagLength
      delete a.additionalData
    }
    if (name === 'AES-CBC') a.iv = bytesOf(r, 16)
    if (name === 'AES-CTR') {
      a.counter = bytesOf(r, 16)
      a.length = 64
    }
    if (name === 'RSA-OAEP') delete a.label
    for (const extra of ['signal', 'timeout', 'keyPin']) if (r.chance(0.7)) delete a[extra]
  }
  return a
}

/** A value's usages, or none: the getters of an object forged on a key's prototype throw, as Node's own do. */
function usagesOf(value) {
  try {
    return Array.isArray(value?.usages) ? value.usages : []
  } catch {
    return []
  }
}

function makeCall(index, pool, material) {
  const r = generator(mix32(SEED, index))
  const method = r.pick(METHODS)
  const USAGE_OF = {
    sign: 'sign',
    verify: 'verify',
    encrypt: 'encrypt',
    decrypt: 'decrypt',
    deriveBits: 'deriveBits',
    deriveKey: 'deriveKey',
    wrapKey: 'wrapKey',
    unwrapKey: 'unwrapKey',
  }
  // Mostly a key that has the usage the method needs, so that calls get past the first checks.
  const key = (usage = USAGE_OF[method]) => {
    const fitting = usage && r.chance(0.6) ? pool.all.filter((k) => usagesOf(k).includes(usage)) : []
    return r.pick(fitting.length ? fitting : pool.all)
  }
  let args
  let poisoned = false
  switch (method) {
    case 'sign':
    case 'encrypt':
    case 'decrypt': {
      const k = key()
      args = [algorithmFor(r, k, pool), k, data(r)]
      break
    }
    case 'verify': {
      const k = key()
      args = [algorithmFor(r, k, pool), k, data(r), data(r)]
      break
    }
    case 'digest':
      // @ts-expect-error TS2554 (converted from JavaScript): Expected 3 arguments, but got 2.
      args = [r.chance(0.7) ? r.pick(['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512', { name: 'SHA-256' }]) : algorithm(r, pool), data(r)]
      break
    case 'generateKey':
      ;({ args, poisoned } = generateCall(r))
      break
    case 'importKey':
      ;({ args, poisoned } = importCall(r, material))
      break
    case 'deriveBits': {
      const k = key()
      args = [algorithmFor(r, k, pool), k, r.pick([0, 8, 128, 256, 384, 512, 7, -1, null, undefined, 2 ** 32 + 8, '256', 1.5])]
      break
    }
    case 'deriveKey': {
      const k = key()
      // @ts-expect-error TS2554 (converted from JavaScript): Expected 3 arguments, but got 2.
      args = [algorithmFor(r, k, pool), k, algorithm(r, pool), extractable(r), usages(r)]
      break
    }
    case 'exportKey':
      args = [format(r), key(null)]
      break
    case 'wrapKey': {
      const wrapping = key()
      args = [format(r), key(null), wrapping, algorithmFor(r, wrapping, pool)]
      break
    }
    case 'unwrapKey': {
      const unwrapping = key()
      // @ts-expect-error TS2554 (converted from JavaScript): Expected 3 arguments, but got 2.
      args = [format(r), data(r), unwrapping, algorithmFor(r, unwrapping, pool), algorithm(r, pool), extractable(r), usages(r)]
      break
    }
  }
  // Now and then too few or too many arguments.
  if (r.chance(0.02)) args = args.slice(0, r.int(args.length))
  else if (r.chance(0.01)) args = [...args, 'extra', {}]
  return { index, method, args, poisoned, text: `#${index} subtle.${method}(${args.map((a) => show(a)).join(', ')})` }
}

// ---------------------------------------------------------------------------------------------
// Running calls

/** The kind of a rejection, or undefined when WebCrypto would never reject with it. */
function specKind(error, call) {
  if (error instanceof TypeError && error.name === 'TypeError') return 'TypeError'
  if (error instanceof DOMException && SPEC_ERRORS.has(error.name)) return error.name
  // An AbortSignal's own reason, given back as fetch does (AbortSignal.timeout's is a TimeoutError).
  const signal = call.args.find((a) => a && typeof a === 'object' && a.signal instanceof AbortSignal)?.signal
  if (signal?.aborted && error === signal.reason && error instanceof DOMException) return `${error.name} (the caller's signal.reason)`
  return undefined
}

function describeError(error) {
  if (!(error instanceof Object)) return `${typeof error} ${show(error)}`
  const cause = error.cause ? ` cause=${error.cause?.constructor?.name}:${error.cause?.code ?? ''}` : ''
  return `${error.constructor?.name} name=${error.name} code=${error.code ?? ''} message=${JSON.stringify(String(error.message).slice(0, 160))}${cause}`
}

async function runCall(subtle, call) {
  let promise
  try {
    promise = subtle[call.method](...call.args)
  } catch (error) {
    return { outcome: 'sync-throw', error }
  }
  if (!(promise instanceof Promise)) return { outcome: 'not-a-promise', value: promise }
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ outcome: 'timeout' }), SETTLE_MS)
  })
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ outcome: 'resolved', value }),
        (error) => ({ outcome: 'rejected', error }),
      ),
      timeout,
    ])
  } finally {
    clearTimeout(timer)
  }
}

// ---------------------------------------------------------------------------------------------

describe(`fuzz: ${CALLS} random calls to hsm.subtle (FUZZ_SEED=${SEED})`, () => {
  let hsm
  const pool = { all: [] }
  const material = []
  const report = { tally: new Map(), failures: [], acceptedInvalid: [], tokenKeysMade: 0, ms: 0 }

  before(async () => {
    console.log(`fuzz seed ${SEED} (set FUZZ_SEED to change it), ${CALLS} calls, ${CONCURRENCY} at a time`)
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'fuzz' }, pin: PIN, maxSessions: MAX_SESSIONS })
    const add = (key, name) => {
      if (key) pool.all.push(named(key, name))
    }
    // Token keys, with several algorithms each, and their (Node) public keys.
    for (const [label, alg] of [
      ['rsa', 'RS256'],
      ['rsa', 'PS384'],
      ['rsa1024', 'RS512'],
      ['rsa1024', 'PS256'],
      ['p256', 'ES256'],
      ['p384', 'ES384'],
      ['p521', 'ES512'],
      ['ed25519', 'EdDSA'],
      ['hmac', 'HS256'],
      ['hmac', 'HS512'],
      ['rsa', undefined],
      ['p256', { name: 'ECDSA', namedCurve: 'P-256' }],
    ]) {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      add(privateKey, `token:${label}/${show(alg)}.private`)
      add(publicKey, `token:${label}/${show(alg)}.public`)
    }
    // Keys made on the token by hsm.subtle (session objects), extractable and not.
    for (const [params, usageList, ext] of [
      [{ name: 'ECDH', namedCurve: 'P-256' }, ['deriveBits', 'deriveKey'], true],
      [{ name: 'ECDSA', namedCurve: 'P-384' }, ['sign', 'verify'], true],
      [{ name: 'Ed25519' }, ['sign', 'verify'], false],
      [{ name: 'AES-GCM', length: 256 }, ['encrypt', 'decrypt'], false],
      [{ name: 'AES-KW', length: 128 }, ['wrapKey', 'unwrapKey'], true],
      [{ name: 'HMAC', hash: 'SHA-384' }, ['sign', 'verify'], true],
      [{ name: 'RSA-OAEP', hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) }, ['decrypt', 'encrypt', 'wrapKey', 'unwrapKey'], false],
    ]) {
      const made = await hsm.subtle.generateKey(params, ext, usageList)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'boolean | string[] | { name: string; namedCurve: string; } | { name...
      const name = `token-made:${params.name}${params.namedCurve ?? ''}${ext ? '(extractable)' : ''}`
      if (made.privateKey) {
        add(made.privateKey, `${name}.private`)
        add(made.publicKey, `${name}.public`)
      } else add(made, name)
    }
    // Node's own keys.
    const node = webcrypto.subtle
    const rsaGen = (name) => ({ name, hash: 'SHA-256', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]) })
    for (const [params, usageList] of [
      [{ name: 'ECDSA', namedCurve: 'P-256' }, ['sign', 'verify']],
      [rsaGen('RSASSA-PKCS1-v1_5'), ['sign', 'verify']],
      [rsaGen('RSA-PSS'), ['sign', 'verify']],
      [rsaGen('RSA-OAEP'), ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']],
      [{ name: 'Ed25519' }, ['sign', 'verify']],
      [{ name: 'X25519' }, ['deriveBits', 'deriveKey']],
      [{ name: 'ECDH', namedCurve: 'P-384' }, ['deriveBits', 'deriveKey']],
      [{ name: 'HMAC', hash: 'SHA-256' }, ['sign', 'verify']],
      [{ name: 'AES-GCM', length: 128 }, ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey']],
      [{ name: 'AES-CBC', length: 256 }, ['encrypt', 'decrypt']],
      [{ name: 'AES-CTR', length: 128 }, ['encrypt', 'decrypt']],
      [{ name: 'AES-KW', length: 256 }, ['wrapKey', 'unwrapKey']],
    ]) {
      // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
      const made = await node.generateKey(params, true, usageList)
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'string[] | { name: any; hash: string; modulusLength: number; public...
      const name = `node:${params.name}${params.namedCurve ?? ''}`
      if (made.privateKey) {
        add(made.privateKey, `${name}.private`)
        add(made.publicKey, `${name}.public`)
      } else add(made, name)
    }
    add(await node.importKey('raw', new Uint8Array(32), 'HKDF', false, ['deriveBits', 'deriveKey']), 'node:HKDF')
    add(await node.importKey('raw', new TextEncoder().encode('password'), 'PBKDF2', false, ['deriveBits', 'deriveKey']), 'node:PBKDF2')
    // Things that are not keys.
    const fake = { type: 'private', extractable: false, algorithm: { name: 'ECDSA', namedCurve: 'P-256' }, usages: ['sign', 'verify'], [Symbol.toStringTag]: 'CryptoKey' }
    for (const [value, name] of [
      [{}, '{}'],
      [fake, 'fakeCryptoKey'],
      [Object.create(Object.getPrototypeOf(pool.all[0]), { algorithm: { value: { name: 'ECDSA' } } }), 'Object.create(TokenCryptoKey.prototype)'],
      [{ ...pool.all[0] }, '{...tokenKey}'],
    ])
      add(value, name)
    pool.all.push(null, undefined, 'key', 42)
    // Valid key data to import on the token.
    const exp = async (fmt, key) => {
      const out = await node.exportKey(fmt, key)
      // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
      return fmt === 'jwk' ? out : new Uint8Array(out)
    }
    const nodeKey = (name) => pool.all.find((k) => names.get(k) === name)
    const ecdsaPair = await node.generateKey({ name: 'ECDSA', namedCurve: 'P-384' }, true, ['sign', 'verify'])
    for (const [fmt, key, alg, usageList] of [
      ['pkcs8', nodeKey('node:ECDSAP-256.private'), { name: 'ECDSA', namedCurve: 'P-256' }, ['sign']],
      ['jwk', ecdsaPair.privateKey, { name: 'ECDSA', namedCurve: 'P-384' }, ['sign']],
      ['spki', nodeKey('node:ECDSAP-256.public'), { name: 'ECDSA', namedCurve: 'P-256' }, ['verify']],
      ['pkcs8', nodeKey('node:Ed25519.private'), { name: 'Ed25519' }, ['sign']],
      ['pkcs8', nodeKey('node:RSASSA-PKCS1-v1_5.private'), { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, ['sign']],
      ['jwk', nodeKey('node:RSA-PSS.private'), { name: 'RSA-PSS', hash: 'SHA-512' }, ['sign']],
      ['pkcs8', nodeKey('node:RSA-OAEP.private'), { name: 'RSA-OAEP', hash: 'SHA-256' }, ['decrypt']],
      ['pkcs8', nodeKey('node:ECDHP-384.private'), { name: 'ECDH', namedCurve: 'P-384' }, ['deriveBits']],
      ['raw', nodeKey('node:HMAC'), { name: 'HMAC', hash: 'SHA-256' }, ['sign', 'verify']],
      ['jwk', nodeKey('node:AES-GCM'), { name: 'AES-GCM' }, ['encrypt']],
      ['raw', nodeKey('node:AES-KW'), { name: 'AES-KW' }, ['wrapKey']],
    ]) {
      const keyData = await exp(fmt, key)
      if (fmt === 'jwk') {
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'key_ops' does not exist on type 'Uint8Array<ArrayBuffer> | JsonWebKey'.
        delete keyData.key_ops
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'ext' does not exist on type 'Uint8Array<ArrayBuffer> | JsonWebKey'.
        delete keyData.ext
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'alg' does not exist on type 'Uint8Array<ArrayBuffer> | JsonWebKey'.
        delete keyData.alg
      }
      material.push({ format: fmt, data: keyData, algorithm: alg, usages: usageList })
    }
  })

  after(() => hsm?.close())

  test('every call settles in time, with a TypeError or a WebCrypto DOMException, and nothing goes unhandled', async () => {
    const started = performance.now()
    const indices = ONLY ?? Array.from({ length: CALLS }, (_, i) => i)
    let next = 0
    const note = (call, problem) => report.failures.push(`${call.text}\n    -> ${problem}`)
    const worker = async () => {
      while (next < indices.length) {
        const call = makeCall(indices[next++], pool, material)
        const result = await runCall(hsm.subtle, call)
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'outcome' does not exist on type 'unknown'.
        if (ONLY) console.log(`${call.text}\n  -> ${result.outcome} ${result.error !== undefined ? describeError(result.error) : show(result.value)}`)
        const count = (name) => report.tally.set(name, (report.tally.get(name) ?? 0) + 1)
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'outcome' does not exist on type 'unknown'.
        switch (result.outcome) {
          case 'resolved':
            count('(resolved)')
            if (call.method === 'generateKey' || call.method === 'importKey') {
              if (call.poisoned) report.acceptedInvalid.push(call.text)
              else report.tokenKeysMade++
            }
            break
          case 'rejected': {
            // @ts-expect-error TS2339 (converted from JavaScript): Property 'error' does not exist on type 'unknown'.
            const kind = specKind(result.error, call)
            if (kind) count(kind)
            else {
              // @ts-expect-error TS2339 (converted from JavaScript): Property 'error' does not exist on type 'unknown'.
              count(`NOT SPEC: ${result.error?.constructor?.name ?? typeof result.error}/${result.error?.name}`)
              // @ts-expect-error TS2339 (converted from JavaScript): Property 'error' does not exist on type 'unknown'.
              note(call, `rejected with ${describeError(result.error)}`)
            }
            break
          }
          case 'timeout':
            count('(no answer in 10 s)')
            note(call, `did not settle within ${SETTLE_MS} ms`)
            break
          case 'sync-throw':
            count('(threw synchronously)')
            // @ts-expect-error TS2339 (converted from JavaScript): Property 'error' does not exist on type 'unknown'.
            note(call, `threw synchronously: ${describeError(result.error)}`)
            break
          default:
            count('(not a promise)')
            // @ts-expect-error TS2339 (converted from JavaScript): Property 'value' does not exist on type 'unknown'.
            note(call, `returned ${show(result.value)} instead of a promise`)
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    // Give late rejections (a result dropped after a deadline, a worker's last word) a moment to surface.
    await new Promise((resolve) => setTimeout(resolve, 200))
    report.ms = performance.now() - started

    const tally = [...report.tally]
      .sort((a, b) => b[1] - a[1])
      .map(([name, n]) => `${name}: ${n}`)
      .join(', ')
    console.log(`fuzz ${indices.length} calls in ${Math.round(report.ms)} ms (seed ${SEED}); ${report.tokenKeysMade} token keys made`)
    console.log(`tally: ${tally}`)
    if (report.acceptedInvalid.length) {
      console.log(`${report.acceptedInvalid.length} generateKey/importKey calls with parameters the spec refuses were accepted, e.g.:`)
      for (const text of report.acceptedInvalid.slice(0, 10)) console.log(`  ${text}`)
    }
    assert.deepEqual(unhandled.exceptions.map(describeError), [], 'uncaught exceptions')
    assert.deepEqual(unhandled.rejections.map(describeError), [], 'unhandled rejections')
    assert.ok(
      report.failures.length === 0,
      `${report.failures.length} calls broke the rules (replay one with FUZZ_SEED=${SEED} FUZZ_ONLY=<#>):\n  ${report.failures.slice(0, 40).join('\n  ')}`,
    )
  })

  // What this fuzz found once, kept as plain tests.
  test('an empty message signs (HMAC, RSA, Ed25519); an empty signature is false; the workers go on', async () => {
    const empty = new Uint8Array(0)
    const hmac = await hsm.keys.get({ label: 'hmac' })
    const mac = await hsm.subtle.sign('HMAC', hmac.privateKey, empty)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
    assert.deepEqual(Buffer.from(mac), createHmac('sha256', provisioned.hmac.secret).update(empty).digest())
    assert.equal(await hsm.subtle.verify('HMAC', hmac.privateKey, empty, empty), false)
    const rsa = await hsm.keys.get({ label: 'rsa' })
    assert.ok(await webcrypto.subtle.verify('RSASSA-PKCS1-v1_5', rsa.publicKey, await hsm.subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, empty), empty))
    const ed = await hsm.keys.get({ label: 'ed25519' })
    assert.ok(await webcrypto.subtle.verify('Ed25519', ed.publicKey, await hsm.subtle.sign('Ed25519', ed.privateKey, empty), empty))
    const ec = await hsm.keys.get({ label: 'p256' })
    await Promise.all(Array.from({ length: 20 }, () => hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, empty)))
  })

  test('a key the token refuses to make: OperationError, not a bare TokenError', async () => {
    await assert.rejects(hsm.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 16392, publicExponent: new Uint8Array([1, 0, 1]) }, false, ['sign']), {
      name: 'OperationError',
    })
    await assert.rejects(hsm.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256', length: 2 ** 31 }, false, ['sign']), { name: 'OperationError' })
    await assert.rejects(hsm.subtle.generateKey({ name: 'HMAC', hash: 'SHA-512', length: null }, false, ['sign']), { name: 'OperationError' })
  })

  test('a Node key Node will not export: Node\'s own answer, spelt as the spec spells it (Node 20 says "InvalidAccessException")', async () => {
    const hkdf = await webcrypto.subtle.importKey('raw', new Uint8Array(32), 'HKDF', false, ['deriveBits'])
    const nodeAnswer = await webcrypto.subtle.exportKey('raw', hkdf).then(
      () => assert.fail('Node exported an HKDF key'),
      (error) => error.name,
    )
    const expected = nodeAnswer === 'InvalidAccessException' ? 'InvalidAccessError' : nodeAnswer
    assert.ok(['InvalidAccessError', 'NotSupportedError'].includes(expected), `Node answered ${nodeAnswer}`)
    await assert.rejects(hsm.subtle.exportKey('raw', hkdf), (error) => error instanceof DOMException && error.name === expected)
  })

  test('afterwards the token still signs correctly (ES256, RS256, checked by Node), within its session bound', async () => {
    const message = new TextEncoder().encode('still alive after the fuzz')
    const ec = await hsm.keys.get({ label: 'p256' }, { algorithm: 'ES256' })
    const ecSignature = await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, ec.privateKey, message)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'p256' does not exist on type '{}'.
    assert.ok(nodeVerify('sha256', message, { key: provisioned.p256.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(ecSignature)))
    assert.equal(await hsm.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, ec.publicKey, ecSignature, message), true)
    const rsa = await hsm.keys.get({ label: 'rsa' }, { algorithm: 'RS256' })
    const rsaSignature = await hsm.subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, message)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'rsa' does not exist on type '{}'.
    assert.ok(nodeVerify('sha256', message, provisioned.rsa.publicKey, Buffer.from(rsaSignature)))
    assert.equal(await hsm.subtle.verify('RSASSA-PKCS1-v1_5', rsa.publicKey, rsaSignature, message), true)
    assert.ok(hsm.openSessions <= MAX_SESSIONS, `${hsm.openSessions} sessions open, more than maxSessions ${MAX_SESSIONS}`)
  })
})
