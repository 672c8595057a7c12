// jose's own work per JWT, c_jose: unmodified jose SignJWT through a global crypto whose
// subtle.sign answers at once with a constant, for a fake CryptoKey that passes jose's checks.
// No token is touched. run.js makes the JWT limit of it, L = cores / (cores / D + c_jose) at full concurrency: what
// jose could reach on this token if the library cost nothing (D: the device limit).
import { CLAIMS, runContender } from '../lib/contender.js'

/** The key's algorithm as jose checks it, and the signature's length, per JOSE alg. */
const FAKE = {
  RS256: { algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: { name: 'SHA-256' }, modulusLength: 2048 }, bytes: 256 },
  PS256: { algorithm: { name: 'RSA-PSS', hash: { name: 'SHA-256' }, modulusLength: 2048 }, bytes: 256 },
  ES256: { algorithm: { name: 'ECDSA', namedCurve: 'P-256' }, bytes: 64 },
  EdDSA: { algorithm: { name: 'Ed25519' }, bytes: 64 },
}

runContender(async ({ alg }) => {
  const { algorithm, bytes } = FAKE[alg]
  const signature = new Uint8Array(bytes).fill(7).buffer
  const key = { type: 'private', extractable: false, algorithm, usages: ['sign'], [Symbol.toStringTag]: 'CryptoKey' }
  const real = Object.getOwnPropertyDescriptor(globalThis, 'crypto')
  Object.defineProperty(globalThis, 'crypto', { configurable: true, value: { subtle: { sign: () => Promise.resolve(signature) } } })
  const { SignJWT } = await import('jose')
  return {
    sign: () => new SignJWT(CLAIMS).setProtectedHeader({ alg }).sign(key),
    close: () => Object.defineProperty(globalThis, 'crypto', real),
  }
})
