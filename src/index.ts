/**
 * pkcs11-webcrypto: keys on a PKCS#11 token (smart card, HSM) as WebCrypto CryptoKeys.
 *
 * @example
 * import { Pkcs11Crypto } from 'pkcs11-webcrypto'
 * const hsm = await Pkcs11Crypto.open({ library: '/usr/lib/softhsm/libsofthsm2.so', token: { label: 'demo' }, pin: '123456' })
 * const { privateKey } = await hsm.keys.get({ label: 'signer' })
 * const signature = await hsm.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, data)
 */
export { Pkcs11Crypto } from './pkcs11-crypto.js'
export type { OpenOptions } from './config/options.js'
export type { TokenSelector } from './pkcs11/slots.js'
export type { KeySelector, KeyGetOptions, KeyGenerateOptions, KeyInfo, TokenKey, KeyStore } from './keys/key-store.js'
export type { CertificateStore, CertificateOptions, CertificateInfo } from './keys/certificate-store.js'
export type { X509Certificate, Pkcs10CertificateRequest } from './lib/x509.js'
export { listSlots, type ListSlotsOptions, type SlotInfo } from './list-slots.js'
export { TokenCryptoKey } from './webcrypto/crypto-key.js'
export { TokenKeyToNodeError } from './webcrypto/errors.js'
export { installGlobal } from './webcrypto/install-global.js'
export { publishedJwk, type JwksOptions, type PublishedJwk } from './keys/jwks.js'
export { JOSE_ALGORITHMS, joseNameOf, type JoseAlgorithm } from './keys/jose-algorithms.js'
export { parseJavaConfig } from './config/java-config.js'
export { parsePkcs11Uri } from './config/pkcs11-uri.js'
export {
  Pkcs11WebCryptoError,
  TokenError,
  ConfigurationError,
  ModuleLoadError,
  TokenNotFoundError,
  KeyNotFoundError,
  KeyExistsError,
  KeyPinRequiredError,
  InputRejectedError,
  ClosedError,
  TimeoutError,
  QueueFullError,
  type ErrorCode,
  type CkrName,
} from './errors.js'
/** Masks PIN values and sources in a text (a URI, a config line) before it is logged, as every error of the library does. */
export { redact } from './lib/redact.js'
