/** The algorithms a token key can be used with, by WebCrypto name. */
import { Ecdsa } from './ecdsa.js'
import { Ed25519 } from './ed25519.js'
import { Hmac } from './hmac.js'
import { RsaPss } from './rsa-pss.js'
import { RsassaPkcs1 } from './rsassa-pkcs1.js'
import type { SignatureAlgorithm } from './signature-algorithm.js'

export const SIGNATURE_ALGORITHMS: ReadonlyMap<string, SignatureAlgorithm> = new Map(
  [new RsassaPkcs1(), new RsaPss(), new Ecdsa(), new Ed25519(), new Hmac()].map((algorithm) => [algorithm.name, algorithm]),
)
