/** The algorithms a token key can be used with, by WebCrypto name. */
import { AesCbc } from './aes-cbc.js'
import { AesCtr } from './aes-ctr.js'
import { AesGcm } from './aes-gcm.js'
import { AesKw } from './aes-kw.js'
import { Ecdh, X25519 } from './ecdh.js'
import { Ecdsa } from './ecdsa.js'
import { Ed25519 } from './ed25519.js'
import { Hmac } from './hmac.js'
import { RsaOaep } from './rsa-oaep.js'
import { RsaPss } from './rsa-pss.js'
import { RsassaPkcs1 } from './rsassa-pkcs1.js'
import type { SignatureAlgorithm } from './signature-algorithm.js'
import type { KeyOperationAlgorithm } from './key-operation-algorithm.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import type { HashName } from '../algorithm.js'

export const SIGNATURE_ALGORITHMS: ReadonlyMap<string, SignatureAlgorithm> = new Map(
  [new RsassaPkcs1(), new RsaPss(), new Ecdsa(), new Ed25519(), new Hmac()].map((algorithm) => [algorithm.name, algorithm]),
)

/** The algorithms that encrypt and decrypt with a token key (and wrap and unwrap by doing so). */
export const CIPHER_ALGORITHMS: ReadonlyMap<string, RsaOaep | AesGcm | AesCbc | AesCtr> = new Map(
  [new RsaOaep(), new AesGcm(), new AesCbc(), new AesCtr()].map((algorithm) => [algorithm.name, algorithm]),
)

/** Key agreement with a token private key. */
export const AGREEMENT_ALGORITHMS: ReadonlyMap<string, Ecdh | X25519> = new Map([new Ecdh(), new X25519()].map((algorithm) => [algorithm.name, algorithm]))

export const AES_KW = new AesKw()

/** Every algorithm a token key can be used with, by WebCrypto name: what key lookups and listings read. */
export const TOKEN_ALGORITHMS: ReadonlyMap<string, { isSupportedBy(token: Mechanisms, hash?: HashName): boolean }> = new Map<string, SignatureAlgorithm | KeyOperationAlgorithm>([
  ...SIGNATURE_ALGORITHMS,
  ...CIPHER_ALGORITHMS,
  ...AGREEMENT_ALGORITHMS,
  [AES_KW.name, AES_KW],
])
