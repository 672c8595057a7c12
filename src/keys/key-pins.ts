/**
 * Key PINs (CKA_ALWAYS_AUTHENTICATE): every use of such a key is a context login with its PIN,
 * and a device counts each wrong one against the PIN (on a PIV card the key PIN is the user PIN:
 * three wrong tries lock the card). So a PIN is spent once:
 * - a PIN the token refuses (CKR_PIN_INCORRECT, _INVALID, _LEN_RANGE) is forgotten for that key:
 *   every later call with it fails at once with the same error, without a C_Login, until the
 *   caller gives another PIN (per call or with keys.get);
 * - concurrent calls with a PIN not yet tried make one C_Login: the first tries it, the others
 *   wait for its outcome;
 * - CKR_PIN_LOCKED stops every key login of the instance.
 * Only digests of refused PINs are kept, never the PINs.
 */
import { createHash } from 'node:crypto'
import { isTokenError } from '../pkcs11/binding.js'
import type { CallOptions, Signer } from '../pkcs11/signer.js'

const REFUSED = ['CKR_PIN_INCORRECT', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE']

/** What is known of one PIN for one key. */
interface PinState {
  /** The token accepted it once. */
  accepted?: boolean
  /** The token refused it: the error every later call gets. */
  refused?: unknown
  /** The call that tries it now; others wait for it. */
  trial?: Promise<unknown>
}

export class KeyPins {
  /** Per key (its identity on the token), per PIN digest. */
  readonly #keys = new Map<string, Map<string, PinState>>()
  /** The token said CKR_PIN_LOCKED: no key login is tried again. */
  #locked: unknown

  /**
   * `signer` with the rules above, for the key `identity` (the same key fetched for several
   * algorithms shares what was learnt of its PINs).
   *
   * @example
   * const signer = keyPins.guard(keySigner(token, key), `${key.id.toString('hex')}/${key.label}`)
   */
  guard(signer: Signer, identity: string): Signer {
    let pins = this.#keys.get(identity)
    if (!pins) this.#keys.set(identity, (pins = new Map()))
    const known = pins
    return {
      get available() {
        return signer.available
      },
      hasMechanism: (mechanism) => signer.hasMechanism(mechanism),
      verify: (mechanism, data, signature, options) => signer.verify(mechanism, data, signature, options),
      sign: (mechanism, data, outputLength, options = {}) => this.#spend(known, options, () => signer.sign(mechanism, data, outputLength, options)),
      // A decryption's key PIN is spent as a signature's is.
      operate: (operation, options = {}) => this.#spend(known, options, () => signer.operate(operation, options)),
    }
  }

  async #spend<T>(pins: Map<string, PinState>, options: CallOptions, sign: () => Promise<T>): Promise<T> {
    if (options.keyPin === undefined) return sign()
    const digest = createHash('sha256').update(options.keyPin).digest('base64')
    let state: PinState | undefined
    for (;;) {
      if (this.#locked) throw this.#locked
      state = pins.get(digest)
      if (state?.refused) throw state.refused
      if (!state?.trial) break
      await state.trial
    }
    // A PIN not yet accepted is tried by this call alone; concurrent ones wait above for its outcome.
    if (!state?.accepted) pins.set(digest, (state = {}))
    const attempt = sign()
    if (!state.accepted)
      state.trial = attempt.then(
        () => undefined,
        () => undefined,
      )
    try {
      const result = await attempt
      state.accepted = true
      return result
    } catch (error) {
      if (isTokenError(error, ...REFUSED)) state.refused = error
      else if (isTokenError(error, 'CKR_PIN_LOCKED')) this.#locked = error
      // Anything else (a timeout, a device away) says nothing of the PIN: untried, it is tried again.
      else if (!state.accepted) pins.delete(digest)
      throw error
    } finally {
      state.trial = undefined
    }
  }
}
