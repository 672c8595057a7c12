/**
 * EME-OAEP decoding (RFC 8017, 7.1.2 step 3), for tokens that do the RSA private operation
 * (CKM_RSA_X_509) but not OAEP with the hash asked for. Every check is made whatever the others
 * found, without a branch or an early return on secret data, and all failures are one: no padding
 * oracle (Manger's attack needs to tell a bad leading byte from the rest).
 */
import { createHash } from 'node:crypto'
import { hashLength, NODE_HASHES, type HashName } from '../algorithm.js'
import { digest } from './signature-algorithm.js'

/** MGF1 with `hash`: `length` bytes from `seed`. */
function mgf1(hash: HashName, seed: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length)
  const counter = Buffer.alloc(4)
  for (let at = 0, i = 0; at < length; i++) {
    counter.writeUInt32BE(i)
    at += createHash(NODE_HASHES[hash]).update(seed).update(counter).digest().copy(out, at)
  }
  return out
}

/**
 * The message in the encoded block `em` (the RSA result, `k` bytes), or undefined when the block
 * is not a valid OAEP encoding with `hash` and `label`.
 */
export function oaepDecode(em: Buffer, k: number, hash: HashName, label: Buffer): Uint8Array | undefined {
  const hLen = hashLength(hash)
  if (em.length !== k || k < 2 * hLen + 2) return undefined
  const maskedSeed = em.subarray(1, 1 + hLen)
  const maskedDb = em.subarray(1 + hLen)
  const seed = Buffer.from(maskedSeed)
  const seedMask = mgf1(hash, maskedDb, hLen)
  for (let i = 0; i < hLen; i++) seed[i] ^= seedMask[i]
  const db = Buffer.from(maskedDb)
  const dbMask = mgf1(hash, seed, db.length)
  for (let i = 0; i < db.length; i++) db[i] ^= dbMask[i]
  const lHash = digest(hash, label)
  // bad != 0 for any failure; each check touches every byte it looks at.
  let bad = em[0]
  for (let i = 0; i < hLen; i++) bad |= db[i] ^ lHash[i]
  // After lHash: zeros, then 0x01, then the message. `looking` is 1 until the 0x01 is met.
  let looking = 1
  let separator = 0
  for (let i = hLen; i < db.length; i++) {
    const isOne = ((db[i] ^ 1) - 1) >>> 31 // 1 when db[i] === 1
    const isZero = (db[i] - 1) >>> 31 // 1 when db[i] === 0
    separator |= (looking & isOne) * i
    bad |= looking & (1 - isZero) & (1 - isOne)
    looking &= 1 - isOne
  }
  bad |= looking
  seed.fill(0)
  // A memory of its own (not Node's shared pool of small Buffers), so nothing of it lingers when it is dropped.
  const message = bad === 0 ? new Uint8Array(db.subarray(separator + 1)) : undefined
  db.fill(0)
  return message
}
