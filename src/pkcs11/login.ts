/**
 * The login policy of one token: one C_Login with the user PIN at open; afterwards a login is
 * state read from the token (C_GetSessionInfo), not an assumption, and is restored once, with the
 * kept PIN, when the token says it was lost. A PIN the token refuses is dropped at once and never
 * tried again: devices lock after a few wrong tries.
 *
 * The login is shared by every session of the process on the token (PKCS#11 ties it to the
 * application). So a second instance on a token this process is logged in to cannot test its PIN
 * with C_Login (CKR_USER_ALREADY_LOGGED_IN); it is compared, in constant time, with the PIN the
 * process logged in with.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { ConfigurationError, TokenError } from '../errors.js'
import { C, callSync, isTokenError, type Handle, type PKCS11 } from './binding.js'

const CKF_LOGIN_REQUIRED = 0x4
const CKS_RO_USER_FUNCTIONS = 1
const CKS_RW_USER_FUNCTIONS = 3
const PIN_REFUSED = ['CKR_PIN_INCORRECT', 'CKR_PIN_LOCKED', 'CKR_PIN_EXPIRED', 'CKR_PIN_INVALID', 'CKR_PIN_LEN_RANGE']

/** Keyed digests of the PINs this process logged in with, by token: never the PIN itself. */
const processKey = randomBytes(32)
const loggedInWith = new Map<string, Buffer>()
const digest = (pin: string) => createHmac('sha256', processKey).update(pin).digest()

export interface LoginTarget {
  native: PKCS11
  /** Names the token within the process: the module's file and the token's serial and label. */
  identity: string
  /** The token's label, for messages. */
  label: string
  /** CK_TOKEN_INFO flags. */
  flags: number
}

export class LoginPolicy {
  readonly #target: LoginTarget
  #pin: string | undefined

  constructor(target: LoginTarget, pin: string | undefined) {
    this.#target = target
    this.#pin = pin
  }

  /** Whether a PIN is kept (to log in again). */
  get hasPin(): boolean {
    return this.#pin !== undefined
  }

  /**
   * The first login, at open: a missing PIN where the token needs one is a ConfigurationError; a
   * refused one fails the open (and is forgotten).
   */
  open(session: Handle): void {
    if (this.#pin === undefined) {
      if (this.#target.flags & CKF_LOGIN_REQUIRED) {
        throw new ConfigurationError(`token "${this.#target.label}" requires a PIN (pin, pinFile, PKCS11_PIN or PKCS11_PIN_FILE)`)
      }
      return
    }
    this.#login(session)
  }

  /** True when the application is logged in to the token as the user (read from the token). */
  loggedIn(session: Handle): boolean {
    const { state } = callSync('C_GetSessionInfo', () => this.#target.native.C_GetSessionInfo(session))
    return state === CKS_RO_USER_FUNCTIONS || state === CKS_RW_USER_FUNCTIONS
  }

  /**
   * The token may have lost the login (someone called C_Logout or C_CloseAllSessions, it came back
   * from a removal): logs in again when it did. True when it logged in, so that what failed or
   * found nothing is worth trying again. A refused PIN throws (and is forgotten).
   */
  restore(session: Handle): boolean {
    if (this.#pin === undefined || this.loggedIn(session)) return false
    this.#login(session)
    return true
  }

  /** Forgets the PIN (at close). */
  forget(): void {
    this.#pin = undefined
  }

  #login(session: Handle): void {
    const pin = this.#pin!
    const { native, identity } = this.#target
    const known = loggedInWith.get(identity)
    if (known && this.loggedIn(session)) return this.#compare(known, pin)
    try {
      callSync('C_Login', () => native.C_Login(session, C.CKU_USER, pin))
      loggedInWith.set(identity, digest(pin))
    } catch (error) {
      // Logged in by another PKCS#11 user of the process: the login state is shared, and the
      // token cannot tell whether this PIN is right.
      if (isTokenError(error, 'CKR_USER_ALREADY_LOGGED_IN')) {
        if (known) this.#compare(known, pin)
        return
      }
      if (isTokenError(error, ...PIN_REFUSED)) this.#pin = undefined
      throw error
    }
  }

  #compare(known: Buffer, pin: string): void {
    if (timingSafeEqual(known, digest(pin))) return
    this.#pin = undefined
    throw new TokenError('CKR_PIN_INCORRECT', C.CKR_PIN_INCORRECT, 'C_Login', 'not the PIN this process is logged in to the token with; no C_Login was tried')
  }
}

/** True for the errors that mean the token refused the PIN. */
export function isPinRefusal(error: unknown): boolean {
  return isTokenError(error, ...PIN_REFUSED)
}
