/**
 * What a token's RSA-OAEP does, found out once per token by trying it with one of its keys: which
 * hashes it takes (SoftHSM 2.6.1: SHA-1 only, the others fail at C_DecryptInit) and whether it
 * checks the label (SoftHSM ignores it). The mechanism list cannot tell, and jose hides a failed
 * decryption behind a random key, so this is asked when a key is handed out, not inside jose.
 */
import { constants, publicEncrypt, randomBytes } from 'node:crypto'
import { TokenError } from '../errors.js'
import type { Token } from '../pkcs11/token.js'
import { NODE_HASHES, type HashName } from '../webcrypto/algorithm.js'
import { CIPHER_ALGORITHMS } from '../webcrypto/algorithms/index.js'
import { REJECTED } from '../webcrypto/algorithms/key-operation-algorithm.js'
import type { TokenCryptoKey } from '../webcrypto/crypto-key.js'

const LABEL = Buffer.from('pkcs11-webcrypto label probe')
const OTHER_LABEL = Buffer.from('pkcs11-webcrypto other label')

export interface OaepSupport {
  /** The token decrypts RSA-OAEP with this hash (and MGF1 with it). */
  hash: boolean
  /** The token checks the label (a ciphertext made with another label fails). */
  labels: boolean
}

const found = new WeakMap<Token, Map<HashName, Promise<OaepSupport>>>()

/**
 * What `token` does with RSA-OAEP and `hash`, tried with `probe` (a decrypting key of that hash,
 * whose public key is `jwk`): one or two decryptions, once per token and hash.
 */
export function oaepSupport(token: Token, hash: HashName, jwk: JsonWebKey, probe: (labels: boolean) => TokenCryptoKey): Promise<OaepSupport> {
  let byHash = found.get(token)
  if (!byHash) found.set(token, (byHash = new Map()))
  let support = byHash.get(hash)
  if (!support) {
    support = tryOaep(hash, jwk, probe)
    byHash.set(hash, support)
    // A failure that says nothing of the token's OAEP (the token was away) is not remembered.
    support.catch(() => byHash.delete(hash))
  }
  return support
}

async function tryOaep(hash: HashName, jwk: JsonWebKey, probe: (labels: boolean) => TokenCryptoKey): Promise<OaepSupport> {
  const oaep = CIPHER_ALGORITHMS.get('RSA-OAEP')!
  const secret = randomBytes(16)
  const encrypt = (label?: Buffer) =>
    publicEncrypt({ key: jwk, format: 'jwk', padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: NODE_HASHES[hash], oaepLabel: label } as never, secret)
  const decrypts = async (ciphertext: Buffer, label: Buffer | undefined, labels: boolean): Promise<boolean> => {
    try {
      return secret.equals(Buffer.from(await oaep.decrypt({ name: 'RSA-OAEP', label }, probe(labels), ciphertext)))
    } catch (error) {
      if (refusesOaep(error)) return false
      throw error
    }
  }
  if (!(await decrypts(encrypt(), undefined, false))) return { hash: false, labels: false }
  // A token that ignores labels decrypts a ciphertext made with one label under another.
  const labelled = encrypt(LABEL)
  const labels = !(await decrypts(labelled, OTHER_LABEL, true)) && (await decrypts(labelled, LABEL, true))
  return { hash: true, labels }
}

/** The token's answer to an OAEP it does not do: a refused mechanism parameter at C_DecryptInit, or a refused input. */
function refusesOaep(error: unknown): boolean {
  if (!(error instanceof DOMException) || error.name !== 'OperationError') return false
  const { cause } = error as { cause?: unknown }
  return (
    error.message === REJECTED ||
    (cause instanceof TokenError && cause.function === 'C_DecryptInit' && ['CKR_MECHANISM_PARAM_INVALID', 'CKR_ARGUMENTS_BAD', 'CKR_MECHANISM_INVALID'].includes(cause.code))
  )
}
