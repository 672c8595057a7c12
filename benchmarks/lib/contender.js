// The child-process side of a contender. run.js forks a contender file with a job (alg, the
// concurrencies, the duration, the token) as its argument; the contender sets up, measures each
// concurrency one after another, sends the results back over IPC and exits.
//
//   runContender(async ({ alg, token }) => ({ sign: (worker) => promise, close }))
//   runContender(async ({ alg, token }) => ({ cell: ({ concurrency, duration, warmup }) => result, close }))
//
// Set-up may throw `new NotAvailable(reason)`: the contender then shows as n/a for that alg.
import { describe, measure } from './measure.js'

export class NotAvailable extends Error {}

/** WebCrypto parameters per JOSE alg (for sign, generateKey and node-webcrypto-p11's key lookup). */
export const WEBCRYPTO = {
  RS256: { sign: { name: 'RSASSA-PKCS1-v1_5' }, key: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) } },
  PS256: { sign: { name: 'RSA-PSS', saltLength: 32 }, key: { name: 'RSA-PSS', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) } },
  ES256: { sign: { name: 'ECDSA', hash: 'SHA-256' }, key: { name: 'ECDSA', namedCurve: 'P-256' } },
  EdDSA: { sign: { name: 'Ed25519' }, key: { name: 'Ed25519' } },
}

/** The claims every contender signs, and the JWS signing input jose makes of them for `alg`. */
export const CLAIMS = { iss: 'https://issuer.example.com', sub: 'alice', aud: 'https://api.example.com', iat: 1700000000, exp: 1700003600, jti: '6f1c2a9e-2b7d-4c1e-9a55-0d3f8e7b1c42', scope: 'read write' }
export function signingInput(alg) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')
  return Buffer.from(`${b64({ alg })}.${b64(CLAIMS)}`)
}

export async function runContender(setup) {
  const job = JSON.parse(process.argv[2])
  let contender
  try {
    contender = await setup(job)
    // One signature first: a contender that cannot sign this alg at all is n/a, not a row of errors.
    await contender.sign?.(0)
  } catch (error) {
    process.send({ na: error instanceof NotAvailable ? error.message : `set-up failed: ${describe(error)}` }, () => process.exit(0))
    return
  }
  try {
    const results = []
    for (const concurrency of job.concurrencies) {
      const cell = { concurrency, duration: job.duration, warmup: job.warmup }
      results.push(contender.cell ? await contender.cell(cell) : await measure({ ...cell, op: contender.sign }))
    }
    await contender.close?.()
    process.send({ results }, () => process.exit(0))
  } catch (error) {
    process.send({ na: `failed: ${describe(error)}` }, () => process.exit(0))
  }
}
