/**
 * `hsm.keys`: finds keys on the token and hands them out as CryptoKeys. Each key is looked up
 * once; later calls reuse the handles (real HSMs throttle C_FindObjects).
 */
import type { X509Certificate } from '../lib/x509.js'
import { KeyNotFoundError } from '../errors.js'
import { C, type Handle, type Template } from '../pkcs11/binding.js'
import type { Token } from '../pkcs11/token.js'
import { PRIVATE_USAGES, PUBLIC_USAGES, findAgain, keySigner, publicCryptoKey, tokenCryptoKey, usagesAllowedBy } from './crypto-keys.js'
import { ReplicaSet, type Signer } from '../pkcs11/signer.js'
import { invalidAccess } from '../webcrypto/errors.js'
import { JOSE_ALGORITHMS, type JoseAlgorithm } from './jose-algorithms.js'
import { oaepSupport } from './oaep-support.js'
import { SIGNATURE_ALGORITHMS, TOKEN_ALGORITHMS } from '../webcrypto/algorithms/index.js'
import type { HashName } from '../webcrypto/algorithm.js'
import { supportedJoseAlgorithms } from './supported-algorithms.js'
import { modulePolicy } from './templates.js'
import { chooseAlgorithm, describe } from './key-algorithm.js'
import { describeKey, objectsOf, type KeyDescription } from './key-description.js'
import { CertificateStore, checkCertificateFields, type CertificateOptions } from './certificate-store.js'
import type { TokenKeyFactory } from './key-factory.js'
import { notSupported } from '../webcrypto/errors.js'
import { findPublicPart } from './public-key.js'
import { KeyPins } from './key-pins.js'
import { selectorTemplate, type KeySelector, type SelectedKey } from './selector.js'

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
  /** The key's own PIN, for keys with CKA_ALWAYS_AUTHENTICATE (the Nimbus guide's `keyPin`). */
  keyPin?: string
  /**
   * RSA-OAEP only, off by default: `'raw'` has the token do the RSA private operation
   * (CKM_RSA_X_509) and this library the OAEP decoding, for tokens whose OAEP lacks the hash (SoftHSM
   * 2.6.1 does SHA-1 only) or ignores the label. The decoded message is in this process's memory,
   * as it is anyway once decrypted.
   */
  rsaOaep?: 'raw'
}

export interface KeyGenerateOptions {
  /** A JOSE name ('ES256', 'RS256', 'EdDSA', 'HS256' ...) or WebCrypto key generation parameters. */
  algorithm: string | RsaHashedKeyGenParams | EcKeyGenParams | HmacKeyGenParams | Algorithm
  label?: string
  /** CKA_ID in hex (default: SHA-1 of the public key). */
  id?: string
  /** RSA modulus size for a JOSE name (default 2048). */
  modulusLength?: number
  /** The curve of an ECDH-ES key: 'P-256' (default), 'P-384', 'P-521' or 'X25519'. */
  namedCurve?: string
  /** Keep it on the token (default true); false makes a session key. */
  persistent?: boolean
  /**
   * Refuse (KeyExistsError) an id or label that an object on the token already has (default true);
   * false adds another key beside it, which is then found by its id only.
   */
  unique?: boolean
  /** Also make a self-signed certificate and store it beside the key (Java sees only such keys). */
  certificate?: CertificateOptions
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
  /** Certificates beside the keys. */
  readonly certificates: CertificateStore
  readonly #token: Token
  /** Other tokens holding the same keys (a replica set): signing spreads over all of them. */
  readonly #replicas: Token[]
  readonly #factory: TokenKeyFactory
  readonly #resolved = new Map<string, Promise<TokenKey>>()
  /** What the token said of the key PINs tried (CKA_ALWAYS_AUTHENTICATE keys): a refused one is never sent again. */
  readonly #keyPins = new KeyPins()

  constructor(token: Token, factory: TokenKeyFactory, crypto: Crypto, replicas: Token[] = []) {
    this.#token = token
    this.#replicas = replicas
    this.#factory = factory
    this.certificates = new CertificateStore(token, this, crypto)
  }

  /**
   * Generates a non-extractable key pair (or secret) on the token, with a self-signed certificate
   * when asked.
   *
   * @example
   * const { privateKey, certificate } = await hsm.keys.generate({ algorithm: 'ES256', label: 'signer', id: '0a', certificate: { subject: 'CN=signer' } })
   */
  async generate(options: KeyGenerateOptions): Promise<TokenKey> {
    this.#token.assertUsable()
    const jose = typeof options.algorithm === 'string' ? JOSE_ALGORITHMS[options.algorithm] : undefined
    if (typeof options.algorithm === 'string' && !jose) throw notSupported(`${options.algorithm} is not a JOSE algorithm this library knows`)
    // ECDH-ES names no curve: P-256 unless `namedCurve` says ('X25519' too).
    const curve = jose?.name === 'ECDH' ? (options.namedCurve ?? 'P-256') : jose?.namedCurve
    const params = jose
      ? {
          name: curve === 'X25519' ? 'X25519' : jose.name,
          hash: jose.hash,
          namedCurve: curve === 'X25519' ? undefined : curve,
          length: jose.length,
          modulusLength: options.modulusLength ?? 2048,
          publicExponent: new Uint8Array([1, 0, 1]),
        }
      : (options.algorithm as Algorithm)
    // What could fail after the key is made is checked before.
    if (options.certificate) checkCertificateOptions(options.certificate, params.name)
    const storage = { label: options.label, id: options.id, persistent: options.persistent ?? true, unique: options.unique }
    const usages = [...(PRIVATE_USAGES[params.name] ?? []), ...(PUBLIC_USAGES[params.name] ?? [])]
    const made = await this.#factory.generate({ ...params, ...storage }, false, usages)
    this.forget()
    try {
      // The key just made, by its handle: never an older one that shares its id or label.
      const description = (await describeKey(this.#token, made.handle))!
      const key = await this.#tokenKey(description, { algorithm: jose ? (options.algorithm as string) : undefined })
      // Signed with the key's default algorithm (RS256 for any RSA key), as createSelfSigned does.
      if (options.certificate) key.certificate = await this.certificates.selfSign(await this.#tokenKey(description, {}), options.certificate)
      return key
    } catch (error) {
      await this.#factory.destroy(made).catch(() => undefined)
      this.forget()
      throw error
    }
  }

  /**
   * Deletes the key with its public key and certificates (same CKA_ID); returns how many objects went.
   *
   * @example
   * await hsm.keys.delete({ label: 'old-signer' })
   */
  async delete(selector: KeySelector): Promise<number> {
    this.#token.assertUsable()
    const key = await this.#find(selectorTemplate(selector, this.#token.slot), this.#token)
    if (key.id.length) {
      // Another key with the same CKA_ID would lose its public key and certificate with this one.
      const sharing = await this.#keysMatching(this.#token, [{ type: C.CKA_ID, value: key.id }])
      if (sharing.length > 1)
        throw new KeyNotFoundError(
          `${sharing.length} keys share CKA_ID ${key.id.toString('hex')} on token "${this.#token.slot.token!.label}" (${await this.#listed(this.#token, sharing)}); delete refused: remove the duplicates with a tool that selects by handle`,
        )
    }
    const related = key.id.length ? await this.#token.findObjects([{ type: C.CKA_ID, value: key.id }]) : [key.handle]
    for (const handle of related) await this.#token.destroyObject(handle)
    this.forget()
    return related.length
  }

  /** Forgets the keys already resolved, so the next `get` reads the token again (after objects changed). */
  forget(): void {
    this.#resolved.clear()
  }

  /**
   * The key selected by id, label or `pkcs11:` URI, for one algorithm.
   *
   * @example
   * const { privateKey, publicKey, certificate } = await hsm.keys.get({ label: 'rsa2048' }, { algorithm: 'PS256' })
   * const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'PS256' }).sign(privateKey)
   */
  get(selector: KeySelector, options: KeyGetOptions = {}): Promise<TokenKey> {
    let cacheKey: string
    let selected: SelectedKey
    try {
      // A closed instance answers nothing, not even from the cache; a malformed selector is no cache key.
      this.#token.assertUsable()
      selected = selectorTemplate(selector, this.#token.slot)
      if (options.keyPin !== undefined && typeof options.keyPin !== 'string') throw new TypeError('keyPin must be a string')
      // The key PIN is part of the key it is given for, so it separates cache entries too.
      cacheKey = JSON.stringify([selector, options.algorithm ?? null, options.keyPin ?? null, options.rsaOaep ?? null])
    } catch (error) {
      return Promise.reject(error)
    }
    let found = this.#resolved.get(cacheKey)
    if (!found) {
      found = this.#resolve(selected, options)
      this.#resolved.set(cacheKey, found)
      found.catch(() => this.#resolved.delete(cacheKey))
    }
    return found
  }

  /**
   * The private and secret keys on the token that this library can use; `offset` / `limit` page
   * through tokens that hold thousands.
   *
   * @example
   * for (const key of await hsm.keys.list()) console.log(key.label, key.kty, key.algorithms)
   */
  async list(page: { offset?: number; limit?: number } = {}): Promise<KeyInfo[]> {
    this.#token.assertUsable()
    const token = this.lookupToken
    const all = [...(await token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY }])), ...(await token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_SECRET_KEY }]))]
    // Handles are cheap; describing a key costs attribute reads, so only the page is described.
    const offset = page.offset ?? 0
    const handles = all.slice(offset, page.limit === undefined ? undefined : offset + page.limit)
    const infos: KeyInfo[] = []
    for (const handle of handles) {
      const key = await describeKey(token, handle)
      if (!key) continue
      // Whether a certificate is there needs no reading and parsing of it.
      const certificates = await token.findObjects(objectsOf(C.CKO_CERTIFICATE, key))
      infos.push({
        id: key.id.toString('hex'),
        label: await this.#labelOf(key, token),
        kty: key.kty,
        bits: key.curve ? undefined : key.bits,
        curve: key.curve?.name,
        certificate: certificates.length > 0,
        algorithms: await this.#algorithmsOf(key, token),
      })
    }
    return infos
  }

  async #resolve(selected: SelectedKey, options: KeyGetOptions): Promise<TokenKey> {
    // One member answers the whole lookup: handles are its own.
    const token = this.lookupToken
    return this.#tokenKey(await this.#find(selected, token), options, token)
  }

  /** The CryptoKeys of `key`, found on `token` (a member of the group, or the only token). */
  async #tokenKey(key: KeyDescription, options: KeyGetOptions, token = this.#token): Promise<TokenKey> {
    const choice = chooseAlgorithm(options.algorithm, key)
    const { jwk, certificate } = await findPublicPart(token, key)
    const usages = usagesAllowedBy(key, choice.name)
    if (usages.length === 0) throw invalidAccess(`${describe(key)} may not be used with ${choice.name} (its CKA_ usage flags forbid it)`)
    const found = (await this.#signerOf(key, token)) ?? keySigner(token, key)
    const signer = key.alwaysAuthenticate ? this.#keyPins.guard(found, `${key.type}/${key.id.toString('hex')}/${key.label}`) : found
    const what = typeof options.algorithm === 'string' ? options.algorithm : choice.name
    // Said now: jose hides a decryption the token cannot do behind a random key.
    if (!SIGNATURE_ALGORITHMS.has(choice.name) && !TOKEN_ALGORITHMS.get(choice.name)!.isSupportedBy(this.#token)) {
      throw notSupported(`token "${token.slot.token!.label}" has no mechanism for ${what}`)
    }
    let oaepLabels: boolean | undefined
    const oaepRaw = choice.name === 'RSA-OAEP' && options.rsaOaep === 'raw'
    if (options.rsaOaep !== undefined && options.rsaOaep !== 'raw') throw new TypeError(`rsaOaep must be 'raw' or absent, not ${JSON.stringify(options.rsaOaep)}`)
    if (oaepRaw && !this.#token.hasMechanism(C.CKM_RSA_X_509)) throw notSupported(`token "${token.slot.token!.label}" has no CKM_RSA_X_509 for rsaOaep: 'raw'`)
    if (choice.name === 'RSA-OAEP' && jwk && !oaepRaw) {
      const support = await this.#oaep(token, key, choice.hash!, jwk, options.keyPin, signer)
      if (!support.hash) throw notSupported(`token "${token.slot.token!.label}" cannot decrypt ${what} (RSA-OAEP with ${choice.hash})`)
      oaepLabels = support.labels
    }
    const privateKey = tokenCryptoKey(token, key, choice, usages, { publicJwk: jwk, keyPin: options.keyPin, signer, oaepLabels, oaepRaw })
    const publicKey = jwk && key.type === 'private' ? await publicCryptoKey(jwk, choice) : undefined
    return { privateKey, publicKey, certificate, id: key.id.toString('hex'), label: await this.#labelOf(key, token) }
  }

  /** The member of the group that answers lookups: the first that is up (the first token when none is). */
  get lookupToken(): Token {
    return [this.#token, ...this.#replicas].find((token) => token.available) ?? this.#token
  }

  /**
   * With replicas: the key on every token, as one ReplicaSet (the same CKA_ID, or label, on each).
   * A member that is away now is looked up when it is back, as signing does.
   */
  async #signerOf(key: KeyDescription, found: Token): Promise<Signer | undefined> {
    if (this.#replicas.length === 0) return undefined
    const members: Signer[] = []
    for (const member of [this.#token, ...this.#replicas]) {
      if (member === found) {
        members.push(keySigner(member, key))
        continue
      }
      if (!member.available) {
        members.push(member.signer(member.keyRefToFind(findAgain(key))))
        continue
      }
      const [handle] = await member.findObjects(findAgain(key))
      const copy = handle && (await describeKey(member, handle))
      if (!copy || copy.kty !== key.kty || copy.bits !== key.bits || copy.curve !== key.curve) {
        throw new KeyNotFoundError(`token "${member.slot.token!.label}" has no copy of ${describe(key)} (same CKA_ID, type and size)`)
      }
      members.push(keySigner(member, copy))
    }
    return new ReplicaSet(members)
  }

  /** The key `selected` names (a selector that names a token, a URI's token=, names the group's first one). */
  async #find(selected: SelectedKey, token: Token): Promise<KeyDescription> {
    const { template, label, classes, text } = selected
    let handles = await this.#keysMatching(token, template, classes)
    if (handles.length === 0 && label !== undefined) {
      // Java's keytool stores the alias as the certificate's label and as the key's CKA_ID.
      const [certificate] = await token.findObjects([
        { type: C.CKA_CLASS, value: C.CKO_CERTIFICATE },
        { type: C.CKA_LABEL, value: label },
      ])
      const id = certificate && (await token.getAttributes(certificate, [C.CKA_ID])).get(C.CKA_ID)
      if (id?.length) handles = await this.#keysMatching(token, [{ type: C.CKA_ID, value: id }], classes)
    }
    const tokenLabel = token.slot.token!.label
    // The selector (a URI may carry a PIN) comes last: the redaction hides everything after a PIN.
    if (handles.length > 1) throw new KeyNotFoundError(`${handles.length} keys on token "${tokenLabel}" match, select one by id (${await this.#listed(token, handles)}): ${text}`)
    const key = handles.length === 1 ? await describeKey(token, handles[0]) : undefined
    if (!key) throw new KeyNotFoundError(`no usable private or secret key on token "${tokenLabel}" with ${text}`)
    return key
  }

  async #keysMatching(token: Token, match: Template, classes: number[] = [C.CKO_PRIVATE_KEY, C.CKO_SECRET_KEY]): Promise<Handle[]> {
    const handles: Handle[] = []
    for (const objectClass of classes) handles.push(...(await token.findObjects([{ type: C.CKA_CLASS, value: objectClass }, ...match])))
    return handles
  }

  /** `id 01 label "a", id 01 label "b"`: the keys behind an ambiguous selector, for the error that refuses it. */
  async #listed(token: Token, handles: Handle[]): Promise<string> {
    const shown = await Promise.all(
      handles.slice(0, 10).map(async (handle) => {
        const a = await token.getAttributes(handle, [C.CKA_ID, C.CKA_LABEL])
        return `id ${a.get(C.CKA_ID)?.toString('hex') || '(none)'} label ${JSON.stringify(a.get(C.CKA_LABEL)?.toString('utf8') ?? '')}`
      }),
    )
    return shown.join(', ') + (handles.length > 10 ? ', ...' : '')
  }

  /** The key's label; keytool leaves it empty and names the key's certificate instead. */
  async #labelOf(key: KeyDescription, token: Token): Promise<string> {
    if (key.label || key.id.length === 0) return key.label
    const [certificate] = await token.findObjects(objectsOf(C.CKO_CERTIFICATE, key))
    return certificate ? ((await token.getAttributes(certificate, [C.CKA_LABEL])).get(C.CKA_LABEL)?.toString('utf8') ?? '') : ''
  }

  async #algorithmsOf(key: KeyDescription, token: Token): Promise<string[]> {
    // RFC 7518 asks for RSA keys of 2048 bits or more, and jose refuses smaller ones.
    if (key.kty === 'RSA' && key.bits! < 2048) return []
    // A curve the module cannot sign on (tpm2-pkcs11's P-521) gets no signature algorithm.
    const signs = key.can.sign && key.secret !== 'aes' && !(key.curve && modulePolicy(this.#token.slot).unusableCurves.includes(key.curve.name))
    const signing = signs
      ? supportedJoseAlgorithms(
          this.#token,
          (a) => a.use === undefined && a.kty === key.kty && (a.kty !== 'EC' || a.namedCurve === key.curve?.name) && (key.kty !== 'OKP' || key.curve?.name === 'Ed25519'),
        )
      : []
    // A key listed for signing is not also listed for encryption (RFC 7517 advises one use a key;
    // tokens that default CKA_DECRYPT or CKA_DERIVE to true would otherwise list both): it still
    // serves keys.get with a JWE name its flags allow.
    if (signing.length > 0) return signing
    const encryption = supportedJoseAlgorithms(this.#token, (a) => a.use === 'enc' && servesEncryption(key, a))
    if (key.kty !== 'RSA' || encryption.length === 0) return encryption
    // The public part is read once for all the OAEP names (null: it could not be read).
    const { jwk } = await findPublicPart(token, key).catch(() => ({ jwk: null }))
    if (jwk === null) return []
    // No public part on the token to probe with: only OAEP's default hash is sure.
    if (!jwk) return encryption.filter((alg) => JOSE_ALGORITHMS[alg].hash === 'SHA-1')
    const usable: string[] = []
    for (const alg of encryption) {
      const support = await this.#oaep(token, key, JOSE_ALGORITHMS[alg].hash as HashName, jwk, undefined, undefined).catch(() => undefined)
      if (support?.hash) usable.push(alg)
    }
    return usable
  }

  #oaep(token: Token, key: KeyDescription, hash: HashName, jwk: JsonWebKey, keyPin: string | undefined, signer: Signer | undefined) {
    return oaepSupport(token, hash, jwk, (oaepLabels) => tokenCryptoKey(token, key, { name: 'RSA-OAEP', hash }, ['decrypt'], { publicJwk: jwk, keyPin, signer, oaepLabels }))
  }
}

/** Whether `key`, by its kind, size and CKA_ flags, serves the JWE algorithm `alg`. */
function servesEncryption(key: KeyDescription, alg: JoseAlgorithm): boolean {
  if (key.kty === 'RSA') return alg.kty === 'RSA' && key.can.decrypt
  if (key.kty === 'EC' || key.curve?.name === 'X25519') return alg.name === 'ECDH' && key.can.derive
  if (key.secret !== 'aes' || alg.length !== key.bits) return false
  return alg.name === 'AES-KW' ? key.can.unwrap || key.can.wrap : key.can.decrypt || key.can.encrypt
}

/** TypeError, before any key is made, for a certificate that could not be made for the key. */
function checkCertificateOptions(certificate: CertificateOptions, algorithm: string): void {
  if (!PRIVATE_USAGES[algorithm]?.includes('sign') || !PUBLIC_USAGES[algorithm]?.length) {
    throw new TypeError(`a ${algorithm} key cannot sign a certificate: only signing key pairs get one`)
  }
  checkCertificateFields(certificate)
}
