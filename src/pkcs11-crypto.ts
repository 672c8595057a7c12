/**
 * Pkcs11Crypto: one token as a WebCrypto `Crypto`, with its keys.
 */
import { randomUUID } from 'node:crypto'
import { inspect } from 'node:util'
import { resolveOptions, type OpenOptions } from './config/options.js'
import { ConfigurationError } from './errors.js'
import { KeyStore } from './keys/key-store.js'
import type { CertificateStore } from './keys/certificate-store.js'
import { Token } from './pkcs11/token.js'
import { supportedJoseAlgorithms } from './keys/supported-algorithms.js'
import { modulePolicy } from './keys/templates.js'
import { buildJwks, type JwksOptions, type PublishedJwk } from './keys/jwks.js'
import { installGlobal } from './webcrypto/install-global.js'
import { RoutingSubtleCrypto } from './webcrypto/subtle.js'
import { TokenKeyFactory } from './keys/key-factory.js'

const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array]

export class Pkcs11Crypto implements Crypto {
  /**
   * Token keys go to the token; every other key to Node's WebCrypto. `generateKey` and
   * `importKey` make keys on this token.
   */
  readonly subtle: SubtleCrypto
  /** The keys on the token. */
  readonly keys: KeyStore
  /** The certificates on the token: self-signed, CSRs, imported chains. */
  readonly certificates: CertificateStore
  readonly #token: Token
  readonly #replicas: Token[]

  private constructor(token: Token, replicas: Token[] = []) {
    this.#token = token
    this.#replicas = replicas
    const factory = new TokenKeyFactory(token)
    this.subtle = new RoutingSubtleCrypto(factory) as unknown as SubtleCrypto
    this.keys = new KeyStore(token, factory, this, replicas)
    this.certificates = this.keys.certificates
  }

  /**
   * Opens a token: loads the module (once per process), selects the token, logs in once.
   *
   * @example
   * const hsm = await Pkcs11Crypto.open({ library: '/usr/lib/softhsm/libsofthsm2.so', token: { label: 'demo' }, pin: '123456' })
   * const hsm2 = await Pkcs11Crypto.open({ config: 'hsm-config.cfg', pin: '123456' })
   * const hsm3 = await Pkcs11Crypto.open({ uri: 'pkcs11:token=demo?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=123456' })
   */
  static async open(options: OpenOptions = {}): Promise<Pkcs11Crypto> {
    return new Pkcs11Crypto(await Token.open(resolveOptions(options)))
  }

  /**
   * Several tokens (or HSMs) that hold the same keys, used as one: each signature goes to the
   * token with the fewest under way; a token that fails or is unplugged is stepped around and used
   * again when it is back. Keys are found on the first token, and on the others by the same CKA_ID
   * (or label); keys, certificates and random numbers are made on the first.
   *
   * @example
   * const hsm = await Pkcs11Crypto.openGroup([
   *   { library: '/usr/lib/vendor/libhsm.so', token: { serial: 'A1' }, pinFile: '/run/secrets/pin' },
   *   { library: '/usr/lib/vendor/libhsm.so', token: { serial: 'B2' }, pinFile: '/run/secrets/pin' },
   * ])
   */
  static async openGroup(members: OpenOptions[]): Promise<Pkcs11Crypto> {
    if (members.length === 0) throw new ConfigurationError('a group needs at least one token')
    const tokens: Token[] = []
    try {
      for (const member of members) tokens.push(await Token.open(resolveOptions(member)))
    } catch (error) {
      await Promise.all(tokens.map((token) => token.close()))
      throw error
    }
    return new Pkcs11Crypto(tokens[0], tokens.slice(1))
  }

  /** The token's label, serial and slot. */
  get token(): { label: string; serial: string; manufacturer: string; model: string; slotId: bigint } {
    const { token, slotId } = this.#token.slot
    return { label: token!.label, serial: token!.serial, manufacturer: token!.manufacturer, model: token!.model, slotId }
  }

  /**
   * Fills `array` with random bytes from the token (C_GenerateRandom).
   *
   * @example
   * const nonce = hsm.getRandomValues(new Uint8Array(16))
   */
  getRandomValues<T extends ArrayBufferView | null>(array: T): T {
    if (!INTEGER_ARRAYS.some((type) => array instanceof type)) {
      throw new DOMException('getRandomValues takes an integer typed array', 'TypeMismatchError')
    }
    const view = array as ArrayBufferView
    if (view.byteLength > 65536) throw new DOMException(`${view.byteLength} bytes asked; at most 65536`, 'QuotaExceededError')
    this.#token.generateRandom(Buffer.from(view.buffer, view.byteOffset, view.byteLength))
    return array
  }

  /**
   * A JWKS of the token's public keys: kid (RFC 7638 thumbprint by default), alg, use, and x5c /
   * x5t#S256 where the token holds a certificate for the key.
   *
   * @example
   * app.get('/.well-known/jwks.json', async (_, res) => res.json(await hsm.jwks()))
   */
  jwks(options?: JwksOptions): Promise<{ keys: PublishedJwk[] }> {
    return buildJwks(this.keys, options)
  }

  /**
   * Routes `globalThis.crypto` so that unmodified code (jose among it) signs with token keys;
   * every other call goes to Node's WebCrypto as before. Returns the uninstall function.
   *
   * @example
   * const uninstall = hsm.installGlobal()
   * const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey)
   * uninstall()
   */
  installGlobal(): () => void {
    return installGlobal()
  }

  /**
   * The JOSE algorithms the token's mechanisms support, as the Nimbus guide lists a provider's
   * services.
   *
   * @example
   * hsm.algorithms() // ['RS256', 'RS384', 'RS512', 'PS256', ..., 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', ...]
   */
  algorithms(): string[] {
    const { unusableCurves } = modulePolicy(this.#token.slot)
    return supportedJoseAlgorithms(this.#token, (alg) => !alg.namedCurve || !unusableCurves.includes(alg.namedCurve))
  }

  randomUUID(): `${string}-${string}-${string}-${string}-${string}` {
    return randomUUID()
  }

  /** Sessions open on the token (and its group) now. */
  get openSessions(): number {
    return [this.#token, ...this.#replicas].reduce((sum, token) => sum + token.openSessions, 0)
  }

  /** Closes every session (once the calls under way are done); the module is finalized when no other instance uses it. */
  async close(): Promise<void> {
    await Promise.all([this.#token, ...this.#replicas].map((token) => token.close()))
  }

  get [Symbol.toStringTag](): string {
    return 'Pkcs11Crypto'
  }

  [inspect.custom](): string {
    return `Pkcs11Crypto { token: ${JSON.stringify(this.token.label)}${this.#token.closed ? ', closed' : ''} }`
  }
}
