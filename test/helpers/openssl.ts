// Test helper: verifies JWS signatures with the `openssl` CLI, independently of Node's crypto.
import { execFile as execFileCb } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFile = promisify(execFileCb)

// Raw r||s signature length per JWS alg (P-521 coordinates take 66 bytes).
const ECDSA_RAW_LENGTH = { ES256: 64, ES384: 96, ES512: 132 }

function derLength(n) {
  if (n < 0x80) return Buffer.from([n])
  if (n < 0x100) return Buffer.from([0x81, n])
  return Buffer.from([0x82, n >> 8, n & 0xff])
}

function derInteger(bytes) {
  let i = 0
  while (i < bytes.length - 1 && bytes[i] === 0) i++ // minimal encoding: no leading zeros...
  let v = bytes.subarray(i)
  if (v[0] & 0x80) v = Buffer.concat([Buffer.from([0]), v]) // ...but keep the value positive
  return Buffer.concat([Buffer.from([0x02]), derLength(v.length), v])
}

/** Converts a raw JWS ECDSA signature (r||s, equal halves) to a DER ECDSA-Sig-Value SEQUENCE { r, s }. */
export function rawEcdsaToDer(raw) {
  raw = Buffer.from(raw)
  if (raw.length === 0 || raw.length % 2 !== 0) throw new Error(`bad raw ECDSA signature length ${raw.length}`)
  const half = raw.length / 2
  const body = Buffer.concat([derInteger(raw.subarray(0, half)), derInteger(raw.subarray(half))])
  return Buffer.concat([Buffer.from([0x30]), derLength(body.length), body])
}

/**
 * Verifies `signature` (raw JWS signature bytes) over `signingInput` ("b64header.b64payload")
 * with the SPKI PEM public key. Resolves false for a bad signature, throws if openssl itself fails.
 */
export async function opensslVerify(alg, spkiPem, signingInput, signature) {
  const m = /^(RS|PS|ES)(256|384|512)$|^EdDSA$/.exec(alg)
  if (!m) throw new Error(`unsupported alg ${alg}`)
  let sig = Buffer.from(signature)
  if (m[1] === 'ES') {
    // openssl would accept any DER; JWS pins the raw length to the curve.
    if (sig.length !== ECDSA_RAW_LENGTH[alg]) return false
    sig = rawEcdsaToDer(sig)
  }
  const dir = await mkdtemp(join(tmpdir(), 'ossl-verify-'))
  try {
    const pub = join(dir, 'pub.pem')
    const input = join(dir, 'input')
    const sigFile = join(dir, 'sig')
    await writeFile(pub, spkiPem)
    await writeFile(input, signingInput, 'utf8')
    await writeFile(sigFile, sig)
    let args
    if (alg === 'EdDSA') {
      args = ['pkeyutl', '-verify', '-pubin', '-inkey', pub, '-rawin', '-in', input, '-sigfile', sigFile]
    } else {
      args = ['dgst', `-sha${m[2]}`, '-verify', pub, '-signature', sigFile]
      // saltlen "digest" = hash length, checked strictly (unlike "auto"); MGF1 defaults to the same hash
      if (m[1] === 'PS') args.push('-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest')
      args.push(input)
    }
    try {
      await execFile('openssl', args)
      return true
    } catch (err) {
      // Exit 1 is also used for e.g. an unreadable key, so look at the message.
      if (err.code === 1 && /Verification failure|Signature Verification Failure/i.test(err.stdout + err.stderr)) {
        return false
      }
      throw new Error(`openssl ${args.slice(0, 2).join(' ')} failed (exit ${err.code}): ${(err.stderr || err.message).trim()}`)
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
