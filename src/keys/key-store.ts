/**
 * `hsm.keys`: finds keys on the token and hands them out as CryptoKeys. Each key is looked up
 * once; later calls reuse the handles (real HSMs throttle C_FindObjects).
 */
import type { X509Certificate } from '../lib/x509.js'
import { KeyNotFoundError } from '../errors.js'
import { C, type Handle, type Template } from '../pkcs11/binding.js'
import type { Token } from '../pkcs11/token.js'
import type { HashName } from '../webcrypto/algorithm.js'
import { SIGNATURE_ALGORITHMS } from '../webcrypto/algorithms/index.js'
import { publicCryptoKey, tokenCryptoKey } from './crypto-keys.js'
import { JOSE_ALGORITHMS } from './jose-algorithms.js'
import { chooseAlgorithm } from './key-algorithm.js'
import { describeKey, type KeyDescription } from './key-description.js'
import { findCertificate, findPublicPart } from './public-key.js'
import { selectorTemplate, type KeySelector } from './selector.js'

export type { KeySelector }

/** A token key ready for WebCrypto and jose. */
export interface TokenKey {
  /** Non-extractable, type 'private' (or 'secret' for HMAC keys). */
  privateKey: CryptoKey
  /** Extractable; undefined when the token holds neither public key nor certificate for it. */
  publicKey?: CryptoKey
  /** The certificate stored beside the key, if any. */
  certificate?: X509Certificate
  /** CKA_ID as hex. */
  id: string
  label: string
}

export interface KeyGetOptions {
  /** A JOSE name ('RS256', 'PS256', 'ES384', 'EdDSA', 'HS256') or a WebCrypto algorithm. Default from the key. */
  algorithm?: string | Algorithm | RsaHashedImportParams | EcKeyImportParams | HmacImportParams
}

/** One line of `keys.list()`. */
export interface KeyInfo {
  id: string
  label: string
  kty: 'RSA' | 'EC' | 'OKP' | 'oct'
  bits?: number
  curve?: string
  certificate: boolean
  /** JOSE algorithms this key can sign with on this token. */
  algorithms: string[]
}

export class KeyStore {
  readonly #token: Token
  readonly #resolved = new Map<string, Promise<TokenKey>>()

  constructor(token: Token) {
    this.#token = token
  }

  /**
   * The key selected by id, label or `pkcs11:` URI, for one algorithm.
   *
   * @example
   * const { privateKey, publicKey, certificate } = await hsm.keys.get({ label: 'rsa2048' }, { algorithm: 'PS256' })
   * const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'PS256' }).sign(privateKey)
   */
  get(selector: KeySelector, options: KeyGetOptions = {}): Promise<TokenKey> {
    const cacheKey = JSON.stringify([selector, options.algorithm ?? null])
    let found = this.#resolved.get(cacheKey)
    if (!found) {
      found = this.#resolve(selector, options.algorithm)
      this.#resolved.set(cacheKey, found)
      found.catch(() => this.#resolved.delete(cacheKey))
    }
    return found
  }

  /**
   * Every private and secret key on the token that this library can use.
   *
   * @example
   * for (const key of await hsm.keys.list()) console.log(key.label, key.kty, key.algorithms)
   */
  async list(): Promise<KeyInfo[]> {
    const handles = [
      ...await this.#token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY }]),
      ...await this.#token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }]),
    ]
    const infos: KeyInfo[] = []
    for (const handle of handles) {
      const key = await describeKey(this.#token, handle)
      if (!key) continue
      const certificate = await findCertificate(this.#token, key)
      // keytool leaves the key's label empty and names the certificate instead.
      const label = key.label || (certificate ? await this.#certificateLabel(key.id) : '')
      infos.push({
        id: key.id.toString('hex'),
        label,
        kty: key.kty,
        bits: key.curve ? undefined : key.bits,
        curve: key.curve?.name,
        certificate: certificate !== undefined,
        algorithms: this.#algorithmsOf(key),
      })
    }
    return infos
  }

  async #resolve(selector: KeySelector, algorithm: unknown): Promise<TokenKey> {
    const key = await this.#find(selector)
    const choice = chooseAlgorithm(algorithm, key)
    const { jwk, certificate } = await findPublicPart(this.#token, key)
    const privateKey = tokenCryptoKey(this.#token, key, choice, jwk)
    const publicKey = jwk && key.type === 'private' ? await publicCryptoKey(jwk, choice) : undefined
    const label = key.label || (certificate ? await this.#certificateLabel(key.id) : '')
    return { privateKey, publicKey, certificate, id: key.id.toString('hex'), label }
  }

  async #find(selector: KeySelector): Promise<KeyDescription> {
    const { template, label, text } = selectorTemplate(selector)
    let handles = await this.#keysMatching(template)
    if (handles.length === 0 && label !== undefined) {
      // Java's keytool stores the alias as the certificate's label and as the key's CKA_ID.
      const [certificate] = await this.#token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_CERTIFICATE }, { type: C.CKA_LABEL, value: label }])
      const id = certificate && (await this.#token.getAttributes(certificate, [C.CKA_ID])).get(C.CKA_ID)
      if (id?.length) handles = await this.#keysMatching([{ type: C.CKA_ID, value: id }])
    }
    if (handles.length > 1) throw new KeyNotFoundError(`${handles.length} keys match ${text} on token "${this.#token.slot.token!.label}"; select by id`)
    const key = handles.length === 1 ? await describeKey(this.#token, handles[0]) : undefined
    if (!key) throw new KeyNotFoundError(`no usable private or secret key with ${text} on token "${this.#token.slot.token!.label}"`)
    return key
  }

  async #keysMatching(match: Template): Promise<Handle[]> {
    return [
      ...await this.#token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY }, ...match]),
      ...await this.#token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }, ...match]),
    ]
  }

  async #certificateLabel(id: Buffer): Promise<string> {
    if (!id.length) return ''
    const [handle] = await this.#token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_CERTIFICATE }, { type: C.CKA_ID, value: id }])
    return handle ? (await this.#token.getAttributes(handle, [C.CKA_LABEL])).get(C.CKA_LABEL)?.toString('utf8') ?? '' : ''
  }

  #algorithmsOf(key: KeyDescription): string[] {
    if (!key.can.sign) return []
    return Object.entries(JOSE_ALGORITHMS)
      .filter(([name, a]) => name !== 'Ed25519' && a.kty === key.kty && (a.kty !== 'EC' || a.namedCurve === key.curve?.name))
      .filter(([, a]) => key.kty !== 'OKP' || key.curve?.name === 'Ed25519')
      .filter(([, a]) => SIGNATURE_ALGORITHMS.get(a.name)!.isSupportedBy(this.#token, a.hash as HashName))
      .map(([name]) => name)
  }
}
