/**
 * `hsm.certificates`: X.509 certificates beside token keys. Certificates and CSRs are signed by the
 * token key through @peculiar/x509 with this token's crypto; a stored certificate carries the key's
 * CKA_ID and label, which is how Java's SunPKCS11 (and so keytool) pairs them.
 */
import { createHash, webcrypto } from 'node:crypto'
import { KeyNotFoundError } from '../errors.js'
import { C, type Handle } from '../pkcs11/binding.js'
import type { Token } from '../pkcs11/token.js'
import { loadX509, x509, type Pkcs10CertificateRequest, type X509Certificate } from '../lib/x509.js'
import { dataError } from '../webcrypto/errors.js'
import { KEY_KINDS } from './crypto-keys.js'
import { defaultJoseAlgorithm } from './jose-algorithms.js'
import type { KeySelector, KeyStore, TokenKey } from './key-store.js'
import { newestCertificate } from './public-key.js'
import { isHexId } from './selector.js'

export interface CertificateOptions {
  /** Distinguished name, e.g. 'CN=signer, O=Example'. */
  subject: string
  /** Validity in days from now (default 365). */
  days?: number
  /** Serial number in hex (default: 16 random bytes). */
  serialNumber?: string
}

/** How `certificates.import` treats what is already there, and what it accepts. */
export interface CertificateImportOptions {
  /** Keep the key's earlier certificates beside the new one (default false: a renewal replaces them). */
  keep?: boolean
  /** Accept a leaf certificate whose notAfter has passed (default false). */
  allowExpired?: boolean
}

export interface CertificateInfo {
  id: string
  label: string
  subject: string
  issuer: string
  serialNumber: string
  notAfter: Date
}

export class CertificateStore {
  readonly #token: Token
  readonly #keys: KeyStore
  readonly #crypto: Crypto

  constructor(token: Token, keys: KeyStore, crypto: Crypto) {
    this.#token = token
    this.#keys = keys
    this.#crypto = crypto
  }

  /**
   * Makes a self-signed certificate with the token key and stores it beside the key.
   *
   * @example
   * const certificate = await hsm.certificates.createSelfSigned({ label: 'signer' }, { subject: 'CN=signer', days: 730 })
   */
  async createSelfSigned(selector: KeySelector, options: CertificateOptions): Promise<X509Certificate> {
    checkCertificateFields(options)
    return this.selfSign(await this.#signingKey(selector), options)
  }

  /** @internal As createSelfSigned, for a key already in hand (the one `keys.generate` just made). */
  async selfSign(key: TokenKey, options: CertificateOptions): Promise<X509Certificate> {
    await loadX509()
    if (!key.publicKey) throw new KeyNotFoundError('the key has no public half on the token to put in a certificate')
    const notBefore = new Date()
    const certificate = await x509().X509CertificateGenerator.createSelfSigned(
      {
        serialNumber:
          options.serialNumber ??
          Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
            .toString('hex')
            .replace(/^[89a-f]/, '1'),
        name: options.subject,
        notBefore,
        notAfter: new Date(notBefore.getTime() + (options.days ?? 365) * 86_400_000),
        keys: { privateKey: key.privateKey, publicKey: key.publicKey! },
        signingAlgorithm: signingAlgorithm(key),
        extensions: [
          new (x509().BasicConstraintsExtension)(false, undefined, true),
          new (x509().KeyUsagesExtension)(x509().KeyUsageFlags.digitalSignature, true),
          await x509().SubjectKeyIdentifierExtension.create(key.publicKey!, false, this.#crypto),
        ],
      },
      this.#crypto,
    )
    await this.#store(certificate, Buffer.from(key.id, 'hex'), key.label)
    return certificate
  }

  /**
   * Makes a PKCS#10 certificate signing request signed by the token key, for a CA to answer.
   *
   * @example
   * const csr = await hsm.certificates.createCsr({ label: 'signer' }, { subject: 'CN=signer' })
   * writeFileSync('signer.csr', csr.toString('pem'))
   */
  async createCsr(selector: KeySelector, options: Pick<CertificateOptions, 'subject'>): Promise<Pkcs10CertificateRequest> {
    await loadX509()
    const key = await this.#signingKey(selector)
    return x509().Pkcs10CertificateRequestGenerator.create(
      {
        name: options.subject,
        keys: { privateKey: key.privateKey, publicKey: key.publicKey! },
        signingAlgorithm: signingAlgorithm(key),
      },
      this.#crypto,
    )
  }

  /**
   * Stores a CA-issued certificate (and its chain) for an existing key. The first certificate
   * must carry the key's public key and be valid now (unless `allowExpired`); each one after it
   * must have signed the one before. The key's earlier certificates are replaced (a renewal)
   * unless `keep`. Either everything is stored, or nothing.
   *
   * @example
   * await hsm.certificates.import({ label: 'signer' }, [leafPem, intermediatePem])
   */
  async import(
    selector: KeySelector,
    chain: string | ArrayBufferView | Array<string | ArrayBufferView | X509Certificate> | X509Certificate,
    options: CertificateImportOptions = {},
  ): Promise<X509Certificate> {
    await loadX509()
    const [leaf, ...cas] = (Array.isArray(chain) ? chain : [chain]).map(toCertificate)
    if (!leaf) throw dataError('no certificate to import')
    const key = await this.#keys.get(selector)
    if (!key.publicKey) throw new KeyNotFoundError('the key has no public half on the token to compare the certificate with')
    const ours = Buffer.from(await webcrypto.subtle.exportKey('spki', key.publicKey))
    if (!ours.equals(Buffer.from(leaf.publicKey.rawData))) throw dataError('the certificate is not for this key: its public key differs')
    if (!options.allowExpired && leaf.notAfter.getTime() < Date.now())
      throw dataError(`the certificate expired on ${leaf.notAfter.toISOString()} (pass allowExpired to store it anyway)`)
    await checkChain([leaf, ...cas])
    const id = Buffer.from(key.id, 'hex')
    const earlier = options.keep ? [] : await this.#ownCertificates(id, ours)
    const made: Handle[] = []
    try {
      made.push(await this.#store(leaf, id, key.label))
      for (const ca of cas) {
        const caId = createHash('sha1').update(Buffer.from(ca.publicKey.rawData)).digest()
        if ((await this.#find(caId)).length === 0) made.push(await this.#store(ca, caId, ca.subjectName.getField('CN')[0] ?? ca.subject, false))
      }
    } catch (error) {
      for (const handle of made) await this.#token.destroyObject(handle).catch(() => undefined)
      this.#keys.forget()
      throw error
    }
    // Only once the new one is stored: a renewal that fails leaves the old certificate serving.
    for (const handle of earlier) await this.#token.destroyObject(handle)
    this.#keys.forget()
    return leaf
  }

  /**
   * Every certificate on the token.
   *
   * @example
   * for (const c of await hsm.certificates.list()) console.log(c.label, c.subject, c.notAfter)
   */
  async list(): Promise<CertificateInfo[]> {
    await loadX509()
    const infos: CertificateInfo[] = []
    const token = this.#keys.lookupToken
    for (const handle of await token.findObjects([{ type: C.CKA_CLASS, value: C.CKO_CERTIFICATE }])) {
      const a = await token.getAttributes(handle, [C.CKA_ID, C.CKA_LABEL, C.CKA_VALUE])
      const value = a.get(C.CKA_VALUE)
      if (!value) continue
      const certificate = new (x509().X509Certificate)(new Uint8Array(value))
      infos.push({
        id: a.get(C.CKA_ID)?.toString('hex') ?? '',
        label: a.get(C.CKA_LABEL)?.toString('utf8') ?? '',
        subject: certificate.subject,
        issuer: certificate.issuer,
        serialNumber: certificate.serialNumber,
        notAfter: certificate.notAfter,
      })
    }
    return infos
  }

  /**
   * The certificate stored for the key with CKA_ID `keyId` (hex), as the Nimbus guide's
   * `getCertificate(keyID).getPublicKey()`.
   *
   * @example
   * const publicKey = await (await hsm.certificates.get('01'))?.publicKey.export()
   */
  async get(keyId: string): Promise<X509Certificate | undefined> {
    // newestCertificate loads x509 when there is a certificate to read.
    const token = this.#keys.lookupToken
    return newestCertificate(token, await this.#find(idOf(keyId), token))
  }

  /** Deletes the certificates stored for the key with CKA_ID `keyId`; returns how many. */
  async delete(keyId: string): Promise<number> {
    const handles = await this.#find(idOf(keyId))
    for (const handle of handles) await this.#token.destroyObject(handle)
    this.#keys.forget()
    return handles.length
  }

  /** The certificates with CKA_ID `id` on `token` (lookups: the group's member that is up; changes: the first token). */
  #find(id: Buffer, token = this.#token): Promise<Handle[]> {
    return token.findObjects([
      { type: C.CKA_CLASS, value: C.CKO_CERTIFICATE },
      { type: C.CKA_ID, value: id },
    ])
  }

  /** The certificates with CKA_ID `id` that carry the public key `spki`: the key's own, not a CA's that shares the id. */
  async #ownCertificates(id: Buffer, spki: Buffer): Promise<Handle[]> {
    const own: Handle[] = []
    for (const handle of await this.#find(id)) {
      const value = (await this.#token.getAttributes(handle, [C.CKA_VALUE])).get(C.CKA_VALUE)
      if (value && spki.equals(Buffer.from(toCertificate(value).publicKey.rawData))) own.push(handle)
    }
    return own
  }

  async #signingKey(selector: KeySelector): Promise<TokenKey> {
    const probe = await this.#keys.get(selector)
    const kind = KEY_KINDS[probe.privateKey.algorithm.name]
    const key = await this.#keys.get(selector, {
      algorithm: defaultJoseAlgorithm(kind, (probe.privateKey.algorithm as EcKeyAlgorithm).namedCurve ?? probe.privateKey.algorithm.name),
    })
    if (!key.publicKey) throw new KeyNotFoundError('the key has no public half on the token to put in a certificate')
    return key
  }

  async #store(certificate: X509Certificate, id: Buffer, label: string, ofOwnKey = true): Promise<Handle> {
    const { AsnIntegerBigIntConverter } = await import('@peculiar/asn1-schema') // loaded with x509 already
    const handle = await this.#token.createObject([
      { type: C.CKA_CLASS, value: C.CKO_CERTIFICATE },
      { type: C.CKA_CERTIFICATE_TYPE, value: C.CKC_X_509 },
      { type: C.CKA_TOKEN, value: true },
      { type: C.CKA_PRIVATE, value: false },
      { type: C.CKA_LABEL, value: label },
      { type: C.CKA_ID, value: id },
      { type: C.CKA_SUBJECT, value: Buffer.from(certificate.subjectName.toArrayBuffer()) },
      { type: C.CKA_ISSUER, value: Buffer.from(certificate.issuerName.toArrayBuffer()) },
      // The DER INTEGER of the serial number (x509 gives it as unsigned hex).
      { type: C.CKA_SERIAL_NUMBER, value: Buffer.from(AsnIntegerBigIntConverter.toASN(BigInt(`0x${certificate.serialNumber}`)).toBER()) },
      { type: C.CKA_VALUE, value: Buffer.from(certificate.rawData) },
      ...(ofOwnKey ? [] : [{ type: C.CKA_CERTIFICATE_CATEGORY, value: 2 /* authority */ }]),
    ])
    this.#keys.forget()
    return handle
  }
}

/** TypeError for certificate options that cannot make a certificate (checked before anything is made). */
export function checkCertificateFields(options: CertificateOptions): void {
  if (options === null || typeof options !== 'object') throw new TypeError('certificate options are { subject, days?, serialNumber? }')
  if (typeof options.subject !== 'string' || options.subject.trim() === '') throw new TypeError('a certificate needs a subject, e.g. "CN=signer"')
  if (options.days !== undefined && !(Number.isInteger(options.days) && options.days > 0)) throw new TypeError('certificate days must be a positive integer')
  if (options.serialNumber !== undefined && !(typeof options.serialNumber === 'string' && /^[0-9a-f]{1,40}$/i.test(options.serialNumber))) {
    throw new TypeError('certificate serialNumber must be 1 to 40 hex digits')
  }
}

/** A certificate id, checked as key selectors check theirs: '01x' and '02 ' are refused, not cut short. */
function idOf(keyId: string): Buffer {
  if (!isHexId(keyId)) throw new TypeError("a certificate id is the key's CKA_ID as even-length hex")
  return Buffer.from(keyId, 'hex')
}

/** DataError unless each certificate of `chain` after the first has issued the one before it. */
async function checkChain(chain: X509Certificate[]): Promise<void> {
  for (let i = 1; i < chain.length; i++) {
    const [child, issuer] = [chain[i - 1], chain[i]]
    const signed = child.issuer === issuer.subject && (await child.verify({ publicKey: issuer.publicKey, signatureOnly: true }, webcrypto as Crypto).catch(() => false))
    if (!signed) throw dataError(`certificate ${i + 1} of the chain (${issuer.subject}) did not issue certificate ${i} (${child.subject}, issued by ${child.issuer})`)
  }
}

/** The WebCrypto parameters x509 adds to the key's own algorithm (ECDSA needs a hash). */
function signingAlgorithm(key: TokenKey): Algorithm {
  const curve = (key.privateKey.algorithm as EcKeyAlgorithm).namedCurve
  const hash = { 'P-384': 'SHA-384', 'P-521': 'SHA-512' }[curve] ?? 'SHA-256'
  return { name: key.privateKey.algorithm.name, hash } as Algorithm
}

function toCertificate(item: string | ArrayBufferView | X509Certificate): X509Certificate {
  if (item instanceof x509().X509Certificate) return item
  try {
    return typeof item === 'string'
      ? new (x509().X509Certificate)(item)
      : new (x509().X509Certificate)(new Uint8Array(new Uint8Array(item.buffer, item.byteOffset, item.byteLength)))
  } catch {
    throw dataError('not an X.509 certificate (PEM or DER)')
  }
}
