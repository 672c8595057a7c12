/**
 * Pkcs11Crypto: one token as a WebCrypto `Crypto`, with its keys.
 */
import { randomUUID } from 'node:crypto'
import { inspect } from 'node:util'
import { resolveOptions, type OpenOptions } from './config/options.js'
import { ClosedError } from './errors.js'
import { KeyStore } from './keys/key-store.js'
import type { CertificateStore } from './keys/certificate-store.js'
import { Token } from './pkcs11/token.js'
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

  private constructor(token: Token) {
    this.#token = token
    const factory = new TokenKeyFactory(token)
    this.subtle = new RoutingSubtleCrypto(factory) as unknown as SubtleCrypto
    this.keys = new KeyStore(token, factory, this)
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
    return new Pkcs11Crypto(Token.open(resolveOptions(options)))
  }

  /** The token's label, serial and slot. */
  get token(): { label: string, serial: string, manufacturer: string, model: string, slotId: bigint } {
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
    if (this.#token.closed) throw new ClosedError()
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

  randomUUID(): `${string}-${string}-${string}-${string}-${string}` {
    return randomUUID()
  }

  /** Sessions open on the token now. */
  get openSessions(): number {
    return this.#token.openSessions
  }

  /** Closes every session; the module is finalized when no other instance uses it. */
  async close(): Promise<void> {
    await this.#token.close()
  }

  get [Symbol.toStringTag](): string {
    return 'Pkcs11Crypto'
  }

  [inspect.custom](): string {
    return `Pkcs11Crypto { token: ${JSON.stringify(this.token.label)}${this.#token.closed ? ', closed' : ''} }`
  }
}
