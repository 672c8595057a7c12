/**
 * Keys made on the token (`generateKey`) or brought to it (`importKey`), as `hsm.subtle` does them.
 * Storage is said with extra members of the algorithm dictionary, which WebCrypto ignores:
 * `{ name: 'ECDSA', namedCurve: 'P-256', label: 'signer', id: '0a', persistent: true }`.
 * A key's id and label are its identity: one already on the token is refused unless the caller
 * says `unique: false`, and a key that cannot be finished (a second object refused) is destroyed.
 */
import { createHash, createPrivateKey, createPublicKey, createSecretKey, randomBytes, webcrypto, type JsonWebKey as NodeJwk, type KeyObject } from 'node:crypto'
import { C, type Mechanism, type Template } from '../pkcs11/binding.js'
import type { Token } from '../pkcs11/token.js'
import { canonicalName, hashName, hashLength, toDictionary, NAMED_CURVES, type NormalizedAlgorithm } from '../webcrypto/algorithm.js'
import { dataError, notSupported } from '../webcrypto/errors.js'
import type { KeyFactory } from '../webcrypto/subtle.js'
import { KEY_KINDS, PRIVATE_USAGES, PUBLIC_USAGES, publicCryptoKey, tokenCryptoKey, type KeyAlgorithmChoice } from './crypto-keys.js'
import { curveNamed, wrapPoint, type Curve } from './curves.js'
import { describeKey } from './key-description.js'
import { viewBytes } from '../lib/buffer.js'
import { SIGNATURE_ALGORITHMS, TOKEN_ALGORITHMS } from '../webcrypto/algorithms/index.js'
import { readPublicKey } from './public-key.js'
import { exportKeyJwk } from './key-export.js'
import { KeyExistsError } from '../errors.js'
import { checkAsk, describeAsk, describingTemplate, idFromHex, modulePolicy, publicAttributes, secretAttributes, usageAttributes, type StorageOptions } from './templates.js'

/** The key pair kind of an asymmetric algorithm; undefined for secret-key algorithms. */
const ASYMMETRIC = Object.fromEntries(Object.entries(KEY_KINDS).filter(([, kind]) => kind !== 'oct')) as Record<string, 'RSA' | 'EC' | 'OKP'>
const NAMES = Object.keys(KEY_KINDS)

/** Parameters after normalization, with the storage members. */
interface KeyParams extends KeyAlgorithmChoice, StorageOptions {
  /** Refuse an id or label already on the token (default true); false adds another key beside it. */
  unique?: boolean
  modulusLength?: number
  publicExponent?: Uint8Array
  length?: number
}

/** A key just made: its CryptoKey(s), CKA_ID, and every object made for it (to destroy it again). */
export interface MadeKey {
  keys: CryptoKey | CryptoKeyPair
  id: Buffer
  /** The private or secret key object. */
  handle: Buffer
  objects: Buffer[]
}

export class TokenKeyFactory implements KeyFactory {
  readonly #token: Token
  /** Creations run one after another, so that two with the same id or label cannot both pass the check. */
  #creations: Promise<unknown> = Promise.resolve()

  constructor(token: Token) {
    this.#token = token
  }

  /**
   * @example
   * const { privateKey, publicKey } = await hsm.subtle.generateKey(
   *   { name: 'ECDSA', namedCurve: 'P-256', label: 'signer', persistent: true }, false, ['sign', 'verify'])
   */
  async generateKey(algorithm: unknown, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey | CryptoKeyPair> {
    if (!this.#serves(algorithm)) return webcrypto.subtle.generateKey(algorithm as Algorithm, extractable, usages)
    return (await this.generate(algorithm, extractable, usages)).keys
  }

  /**
   * Whether keys of `algorithm` are made on this token: not those of algorithms no token key
   * serves (HKDF, PBKDF2 ...: Node's), nor of one whose mechanism the token lacks.
   */
  #serves(algorithm: unknown): boolean {
    const { name } = toDictionary(algorithm)
    const known = NAMES.find((candidate) => candidate.toUpperCase() === String(name).toUpperCase())
    if (!known) return false
    return SIGNATURE_ALGORITHMS.has(known) || TOKEN_ALGORITHMS.get(known)!.isSupportedBy(this.#token)
  }

  /** As generateKey, and says which objects it made. */
  async generate(algorithm: unknown, extractable: boolean, usages: KeyUsage[]): Promise<MadeKey> {
    const params = normalizeGenerate(algorithm, extractable)
    checkUsages(params.name, usages)
    checkAsk(params, modulePolicy(this.#token.slot))
    return this.#create(params, async (made) => {
      const handle = ASYMMETRIC[params.name] ? await this.#generatePair(params, usages, made) : await this.#generateSecret(params, usages, made)
      const id = (await this.#token.getAttributes(handle.private, [C.CKA_ID])).get(C.CKA_ID) ?? Buffer.alloc(0)
      return { keys: handle.keys, id, handle: handle.private, objects: made }
    })
  }

  /** Destroys the objects of a key made here (a caller that could not finish what it made with it). */
  async destroy(made: Pick<MadeKey, 'objects'>): Promise<void> {
    for (const handle of made.objects) await this.#token.destroyObject(handle)
  }

  /**
   * Runs `make` after the others, once the id and label are known to be free; `make` pushes each
   * object it creates into `made`, and they are destroyed if it fails.
   */
  #create<T>(params: KeyParams, make: (made: Buffer[]) => Promise<T>): Promise<T> {
    const run = this.#creations.then(async () => {
      await this.#checkFree(params)
      const made: Buffer[] = []
      try {
        return await make(made)
      } catch (error) {
        await this.destroy({ objects: made }).catch(() => undefined)
        throw error
      }
    })
    this.#creations = run.catch(() => undefined)
    return run
  }

  /** KeyExistsError when an object on the token already has the id or label asked for. */
  async #checkFree(params: KeyParams): Promise<void> {
    if (params.unique === false) return
    const id = idFromHex(params.id)
    if (id && (await this.#token.findObjects([{ type: C.CKA_ID, value: id }])).length > 0) throw new KeyExistsError(`id ${params.id}`, this.#token.slot.token!.label)
    if (params.label !== undefined && (await this.#token.findObjects([{ type: C.CKA_LABEL, value: params.label }])).length > 0) {
      throw new KeyExistsError(`label "${params.label}"`, this.#token.slot.token!.label)
    }
  }

  /**
   * Imports a private or secret key into the token (non-extractable unless asked); a public key
   * is Node's, and also stored as a public-key object only when `persistent` asks (a key that
   * nothing on the token uses is not written). Returns its CryptoKey.
   *
   * @example
   * const key = await hsm.subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', label: 'imported', persistent: true }, false, ['sign'])
   */
  async importKey(format: KeyFormat, keyData: unknown, algorithm: unknown, extractable: boolean, usages: KeyUsage[]): Promise<CryptoKey> {
    if (!this.#serves(algorithm)) return webcrypto.subtle.importKey(format as 'raw', keyData as BufferSource, algorithm as Algorithm, extractable, usages)
    const params = normalizeCommon(algorithm, extractable)
    const nodeAlgorithm = { name: params.name, hash: params.hash, namedCurve: params.namedCurve } as Algorithm
    const policy = modulePolicy(this.#token.slot)
    const storePublic = async (jwk: JsonWebKey, key: KeyObject) => {
      checkAsk(params, policy)
      await this.#create(params, async (made) => {
        made.push(
          await describingTemplate(describeAsk(`${keyName(params, key)} public key`, [], params), () =>
            this.#token.createObject([...publicTemplate(jwk, params), ...publicAttributes(params, idFromHex(params.id) ?? publicId(jwk))]),
          ),
        )
      })
    }
    if (format === 'raw' && ASYMMETRIC[params.name]) {
      // The spec's raw format of EC, Ed25519 and X25519 public keys: Node reads it.
      const publicKey = await webcrypto.subtle.importKey('raw', viewBytes(keyData, 'keyData'), nodeAlgorithm, true, usages)
      if (params.persistent) {
        const jwk = await webcrypto.subtle.exportKey('jwk', publicKey)
        await storePublic(jwk, createPublicKey({ key: jwk as NodeJwk, format: 'jwk' }))
      }
      return publicKey
    }
    const key = parseKeyData(format, keyData, params.name)
    if (key.type === 'public') {
      const jwk = key.export({ format: 'jwk' }) as JsonWebKey
      if (params.persistent) await storePublic(jwk, key)
      return webcrypto.subtle.importKey('jwk', jwk, nodeAlgorithm, true, usages)
    }
    checkAsk(params, policy)
    const create = (what: string, keyUsages: readonly KeyUsage[], template: Template) =>
      describingTemplate(describeAsk(`${keyName(params, key)} ${what}`, keyUsages, params), () => this.#token.createObject(template))
    checkUsages(params.name, usages, key.type === 'private' ? PRIVATE_USAGES[params.name] : undefined)
    if (key.type === 'secret') {
      const value = key.export()
      if (params.name !== 'HMAC' && ![16, 24, 32].includes(value.length)) throw dataError(`an AES key has 16, 24 or 32 bytes, not ${value.length}`)
      if (value.length === 0) throw dataError('an HMAC key cannot be empty')
      return this.#create(params, async (made) => {
        made.push(
          await create('secret key', usages, [
            ...secretKeyTemplate(params),
            { type: C.CKA_VALUE, value },
            ...usageAttributes(tokenUsages(params.name, usages), 'secret', policy),
            ...secretAttributes(params, idFromHex(params.id) ?? randomBytes(8)),
          ]),
        )
        return this.#cryptoKey(made[0], params, usages)
      })
    }
    const jwk = key.export({ format: 'jwk' }) as JsonWebKey
    const id = idFromHex(params.id) ?? publicId(jwk)
    const publicJwk = toPublicJwk(jwk)
    return this.#create(params, async (made) => {
      made.push(
        await create(
          'public key',
          usages.filter((u) => PUBLIC_USAGES[params.name]?.includes(u)),
          [...publicTemplate(publicJwk, params), ...usageAttributes(usages, 'public', policy), ...publicAttributes(params, id)],
        ),
      )
      made.push(
        await create('private key', usages, [
          ...privateTemplate(jwk, params),
          ...usageAttributes(tokenUsages(params.name, usages), 'private', policy),
          ...secretAttributes(params, id),
        ]),
      )
      return this.#cryptoKey(made[1], params, usages, publicJwk)
    })
  }

  async #generatePair(params: KeyParams, usages: KeyUsage[], made: Buffer[]): Promise<{ keys: CryptoKeyPair; private: Buffer }> {
    const kty = ASYMMETRIC[params.name]
    const privateUsages = usages.filter((u) => PRIVATE_USAGES[params.name].includes(u))
    const publicUsages = usages.filter((u) => PUBLIC_USAGES[params.name].includes(u))
    const curve = params.namedCurve ? curveNamed(params.namedCurve) : kty === 'OKP' ? curveNamed(params.name) : undefined
    const givenId = idFromHex(params.id)
    const policy = modulePolicy(this.#token.slot)
    const asked = describeAsk(curve ? (kty === 'OKP' ? curve.name : `EC ${curve.name}`) : `RSA ${params.modulusLength}`, [...privateUsages, ...publicUsages], params)
    const { publicKey, privateKey } = await describingTemplate(asked, () =>
      this.#token.generateKeyPair(
        pairMechanism(kty),
        [...pairPublicTemplate(params, curve), ...usageAttributes(publicUsages, 'public', policy), ...publicAttributes(params, givenId)],
        [...usageAttributes(tokenUsages(params.name, privateUsages), 'private', policy), ...secretAttributes(params, givenId)],
      ),
    )
    made.push(privateKey, publicKey)
    const publicPart = await readPublicKey(this.#token, publicKey, { kty, curve })
    if (!publicPart) throw notSupported('the token made a key pair whose public key it does not show')
    if (!givenId) {
      // Like OpenSC and p11tool: the id is the SHA-1 of the public key, so it is the same wherever the key goes.
      const id = [{ type: C.CKA_ID, value: createHash('sha1').update(publicPart.raw).digest() }]
      await this.#token.setAttributes(publicKey, id)
      await this.#token.setAttributes(privateKey, id)
    }
    return {
      keys: {
        privateKey: await this.#cryptoKey(privateKey, params, privateUsages, publicPart.jwk),
        publicKey: await publicCryptoKey(publicPart.jwk, params, publicUsages),
      },
      private: privateKey,
    }
  }

  async #generateSecret(params: KeyParams, usages: KeyUsage[], made: Buffer[]): Promise<{ keys: CryptoKey; private: Buffer }> {
    const bits = params.length!
    const hmac = params.name === 'HMAC'
    const handle = await describingTemplate(describeAsk(`${hmac ? 'HMAC' : 'AES'} ${bits}`, usages, params), () =>
      this.#token.generateKey({ mechanism: hmac ? C.CKM_GENERIC_SECRET_KEY_GEN : C.CKM_AES_KEY_GEN }, [
        ...secretKeyTemplate(params),
        { type: C.CKA_VALUE_LEN, value: bits / 8 },
        ...usageAttributes(tokenUsages(params.name, usages), 'secret', modulePolicy(this.#token.slot)),
        ...secretAttributes(params, idFromHex(params.id) ?? randomBytes(8)),
      ]),
    )
    made.push(handle)
    return { keys: await this.#cryptoKey(handle, params, usages), private: handle }
  }

  async #cryptoKey(handle: Buffer, params: KeyParams, usages: KeyUsage[], publicJwk?: JsonWebKey): Promise<CryptoKey> {
    const description = (await describeKey(this.#token, handle))!
    return tokenCryptoKey(this.#token, description, params, usages, {
      publicJwk,
      exportJwk: description.exportable ? () => exportKeyJwk(this.#token, description) : undefined,
    })
  }
}

/**
 * The usages a key's CKA_ flags need: AES-GCM, -CBC, -CTR and RSA-OAEP wrap by encrypting and unwrap
 * by decrypting (no token does C_WrapKey with them), which PKCS#11 allows only with CKA_ENCRYPT /
 * CKA_DECRYPT. AES-KW keys keep CKA_WRAP / CKA_UNWRAP alone.
 */
function tokenUsages(name: string, usages: KeyUsage[]): KeyUsage[] {
  if (!['AES-GCM', 'AES-CBC', 'AES-CTR', 'RSA-OAEP'].includes(name)) return usages
  return [...usages, ...(usages.includes('wrapKey') ? ['encrypt' as const] : []), ...(usages.includes('unwrapKey') ? ['decrypt' as const] : [])]
}

function normalizeCommon(algorithm: unknown, extractable: boolean): KeyParams {
  const input = toDictionary(algorithm) as NormalizedAlgorithm & StorageOptions & { unique?: unknown }
  const name = canonicalName(input.name, NAMES)
  if (input.label !== undefined && typeof input.label !== 'string') throw new TypeError('label must be a string')
  if (input.unique !== undefined && typeof input.unique !== 'boolean') throw new TypeError('unique must be a boolean')
  idFromHex(input.id)
  const params: KeyParams = { name, label: input.label, id: input.id, persistent: input.persistent, extractable, unique: input.unique }
  if (ASYMMETRIC[name] === 'RSA' || name === 'HMAC') params.hash = hashName(input.hash)
  if (ASYMMETRIC[name] === 'EC') {
    if (input.namedCurve === undefined) throw new TypeError('namedCurve is required')
    params.namedCurve = canonicalName(input.namedCurve, NAMED_CURVES)
  }
  return params
}

function normalizeGenerate(algorithm: unknown, extractable: boolean): KeyParams {
  const params = normalizeCommon(algorithm, extractable)
  const input = toDictionary(algorithm)
  if (ASYMMETRIC[params.name] === 'RSA') {
    const { modulusLength, publicExponent } = input
    if (typeof modulusLength !== 'number' || !Number.isInteger(modulusLength)) throw new TypeError('modulusLength is required')
    if (!(publicExponent instanceof Uint8Array)) throw new TypeError('publicExponent must be a Uint8Array')
    if (modulusLength < 1024 || modulusLength % 8 !== 0) throw new DOMException(`modulusLength ${modulusLength} is not allowed`, 'OperationError')
    params.modulusLength = modulusLength
    params.publicExponent = publicExponent
  } else if (params.name === 'HMAC') {
    // Absent: the hash's block size. Present, it is a WebIDL unsigned long: null is 0, which is refused.
    const length = input.length === undefined ? (hashLength(params.hash!) > 32 ? 1024 : 512) : Number(input.length)
    if (typeof length !== 'number' || length <= 0 || length % 8 !== 0) throw new DOMException('HMAC length must be a positive multiple of 8', 'OperationError')
    params.length = length
  } else if (KEY_KINDS[params.name] === 'oct') {
    if (![128, 192, 256].includes(input.length as number)) throw new DOMException('AES length must be 128, 192 or 256', 'OperationError')
    params.length = input.length as number
  }
  return params
}

/** SyntaxError, as the spec says, for usages the algorithm does not have, or none where one is needed. */
function checkUsages(name: string, usages: unknown, needed?: readonly KeyUsage[]): asserts usages is KeyUsage[] {
  if (!Array.isArray(usages)) throw new TypeError('keyUsages must be an array')
  const allowed = [...PRIVATE_USAGES[name], ...(PUBLIC_USAGES[name] ?? [])]
  const bad = usages.find((usage) => !allowed.includes(usage))
  if (bad !== undefined) throw new DOMException(`${String(bad)} is not a usage of ${name} keys`, 'SyntaxError')
  const privateOnes = needed ?? PRIVATE_USAGES[name]
  if (!usages.some((usage) => privateOnes.includes(usage))) throw new DOMException(`a ${name} key needs one of the usages ${privateOnes.join(', ')}`, 'SyntaxError')
}

function parseKeyData(format: KeyFormat, keyData: unknown, name: string): KeyObject {
  const kty = ASYMMETRIC[name]
  if (format === 'jwk' && (keyData === null || typeof keyData !== 'object' || ArrayBuffer.isView(keyData))) throw new TypeError('a jwk key must be an object')
  // A TypeError for what is no BufferSource (or a view on shared memory), not the DataError of bytes that are no key.
  const bytes = format === 'jwk' ? undefined : viewBytes(keyData, 'keyData')
  if (!['jwk', 'pkcs8', 'spki', 'raw'].includes(format)) throw new TypeError(`unknown key format "${String(format)}"`)
  let key: KeyObject
  try {
    if (format === 'jwk') {
      const jwk = keyData as NodeJwk
      if (jwk.kty === 'oct' && typeof jwk.k !== 'string') throw dataError('an oct JWK needs k')
      key =
        jwk.kty === 'oct'
          ? createSecretKey(Buffer.from(jwk.k as string, 'base64url'))
          : jwk.d !== undefined
            ? createPrivateKey({ key: jwk, format: 'jwk' })
            : createPublicKey({ key: jwk, format: 'jwk' })
    } else {
      if (format === 'pkcs8') key = createPrivateKey({ key: bytes!, format: 'der', type: 'pkcs8' })
      else if (format === 'spki') key = createPublicKey({ key: bytes!, format: 'der', type: 'spki' })
      else if (format === 'raw' && !kty) key = createSecretKey(bytes!)
      else throw notSupported(`importing ${name} keys as ${String(format)} into the token is not supported`)
    }
  } catch (error) {
    if (error instanceof DOMException) throw error
    // Whatever Node's parser says of the bytes, to WebCrypto they are bad key data.
    throw dataError(`the key data is not a valid ${String(format)} key`)
  }
  const actual =
    key.type === 'secret'
      ? undefined
      : key.asymmetricKeyType === 'rsa'
        ? 'RSA'
        : key.asymmetricKeyType === 'ec'
          ? 'EC'
          : key.asymmetricKeyType === name.toLowerCase()
            ? 'OKP'
            : 'other'
  if (actual !== kty) throw dataError(`the key data is not a ${name} key`)
  return key
}

function pairMechanism(kty: 'RSA' | 'EC' | 'OKP'): Mechanism {
  return { mechanism: { RSA: C.CKM_RSA_PKCS_KEY_PAIR_GEN, EC: C.CKM_EC_KEY_PAIR_GEN, OKP: C.CKM_EC_EDWARDS_KEY_PAIR_GEN }[kty] }
}

function pairPublicTemplate(params: KeyParams, curve: Curve | undefined): Template {
  if (curve) return [{ type: C.CKA_EC_PARAMS, value: curve.params }]
  return [
    { type: C.CKA_MODULUS_BITS, value: params.modulusLength! },
    { type: C.CKA_PUBLIC_EXPONENT, value: Buffer.from(params.publicExponent!) },
  ]
}

function secretKeyTemplate(params: KeyParams): Template {
  return [
    { type: C.CKA_CLASS, value: C.CKO_SECRET_KEY },
    { type: C.CKA_KEY_TYPE, value: params.name === 'HMAC' ? C.CKK_GENERIC_SECRET : C.CKK_AES },
  ]
}

const b64 = (value: string | undefined) => Buffer.from(value ?? '', 'base64url')

function publicTemplate(jwk: JsonWebKey, params: KeyParams): Template {
  const common = [{ type: C.CKA_CLASS, value: C.CKO_PUBLIC_KEY }]
  if (jwk.kty === 'RSA') {
    return [...common, { type: C.CKA_KEY_TYPE, value: C.CKK_RSA }, { type: C.CKA_MODULUS, value: b64(jwk.n) }, { type: C.CKA_PUBLIC_EXPONENT, value: b64(jwk.e) }]
  }
  const curve = curveOf(jwk, params)
  const point = jwk.kty === 'EC' ? Buffer.concat([Buffer.from([4]), b64(jwk.x), b64(jwk.y)]) : b64(jwk.x)
  return [
    ...common,
    { type: C.CKA_KEY_TYPE, value: jwk.kty === 'EC' ? C.CKK_EC : C.CKK_EC_EDWARDS },
    { type: C.CKA_EC_PARAMS, value: curve.params },
    { type: C.CKA_EC_POINT, value: wrapPoint(point) },
  ]
}

function privateTemplate(jwk: JsonWebKey, params: KeyParams): Template {
  const common = [{ type: C.CKA_CLASS, value: C.CKO_PRIVATE_KEY }]
  if (jwk.kty === 'RSA') {
    return [
      ...common,
      { type: C.CKA_KEY_TYPE, value: C.CKK_RSA },
      { type: C.CKA_MODULUS, value: b64(jwk.n) },
      { type: C.CKA_PUBLIC_EXPONENT, value: b64(jwk.e) },
      { type: C.CKA_PRIVATE_EXPONENT, value: b64(jwk.d) },
      { type: C.CKA_PRIME_1, value: b64(jwk.p) },
      { type: C.CKA_PRIME_2, value: b64(jwk.q) },
      { type: C.CKA_EXPONENT_1, value: b64(jwk.dp) },
      { type: C.CKA_EXPONENT_2, value: b64(jwk.dq) },
      { type: C.CKA_COEFFICIENT, value: b64(jwk.qi) },
    ]
  }
  return [
    ...common,
    { type: C.CKA_KEY_TYPE, value: jwk.kty === 'EC' ? C.CKK_EC : C.CKK_EC_EDWARDS },
    { type: C.CKA_EC_PARAMS, value: curveOf(jwk, params).params },
    { type: C.CKA_VALUE, value: b64(jwk.d) },
  ]
}

function curveOf(jwk: JsonWebKey, params: KeyParams): Curve {
  const curve = curveNamed(String(jwk.crv))
  if (!curve || (params.namedCurve && params.namedCurve !== curve.name)) throw dataError(`the key is on ${jwk.crv}, not ${params.namedCurve ?? params.name}`)
  return curve
}

/** The key's kind and size in words, for an error: "RSA 2048", "EC P-256", "AES 128". */
function keyName(params: KeyParams, key: KeyObject): string {
  if (key.type === 'secret') return `${params.name} ${(key.symmetricKeySize ?? 0) * 8}`
  const details = key.asymmetricKeyDetails
  return details?.modulusLength ? `RSA ${details.modulusLength}` : params.namedCurve ? `EC ${params.namedCurve}` : params.name
}

function toPublicJwk(jwk: JsonWebKey): JsonWebKey {
  const { kty, n, e, crv, x, y } = jwk
  return kty === 'RSA' ? { kty, n, e } : kty === 'EC' ? { kty, crv, x, y } : { kty, crv, x }
}

/** SHA-1 of the public key value (RSA modulus, EC point), the id common tools give a key. */
function publicId(jwk: JsonWebKey): Buffer {
  const raw = jwk.kty === 'RSA' ? b64(jwk.n) : jwk.kty === 'EC' ? Buffer.concat([Buffer.from([4]), b64(jwk.x), b64(jwk.y)]) : b64(jwk.x)
  return createHash('sha1').update(raw).digest()
}
