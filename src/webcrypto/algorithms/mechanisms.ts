/**
 * The one table from a WebCrypto hash to the PKCS#11 mechanisms built on it, so no algorithm file
 * keeps a switch of its own.
 */
import { C } from '../../pkcs11/binding.js'
import type { HashName } from '../algorithm.js'

export interface HashMechanisms {
  /** CKM_SHA* (the digest itself; RSA-PSS and OAEP parameters name it). */
  digest: number
  /** CKG_MGF1_SHA* */
  mgf1: number
  /** CKM_SHA*_RSA_PKCS */
  rsaPkcs: number
  /** CKM_SHA*_RSA_PKCS_PSS */
  rsaPss: number
  /** CKM_ECDSA_SHA* */
  ecdsa: number
  /** CKM_SHA*_HMAC */
  hmac: number
  /** DER DigestInfo prefix, for signing a digest with raw CKM_RSA_PKCS. */
  digestInfo: Buffer
}

export const BY_HASH: Readonly<Record<HashName, HashMechanisms>> = {
  'SHA-1': {
    digest: C.CKM_SHA_1,
    mgf1: C.CKG_MGF1_SHA1,
    rsaPkcs: C.CKM_SHA1_RSA_PKCS,
    rsaPss: C.CKM_SHA1_RSA_PKCS_PSS,
    ecdsa: C.CKM_ECDSA_SHA1,
    hmac: C.CKM_SHA_1_HMAC,
    digestInfo: Buffer.from('3021300906052b0e03021a05000414', 'hex'),
  },
  'SHA-256': {
    digest: C.CKM_SHA256,
    mgf1: C.CKG_MGF1_SHA256,
    rsaPkcs: C.CKM_SHA256_RSA_PKCS,
    rsaPss: C.CKM_SHA256_RSA_PKCS_PSS,
    ecdsa: C.CKM_ECDSA_SHA256,
    hmac: C.CKM_SHA256_HMAC,
    digestInfo: Buffer.from('3031300d060960864801650304020105000420', 'hex'),
  },
  'SHA-384': {
    digest: C.CKM_SHA384,
    mgf1: C.CKG_MGF1_SHA384,
    rsaPkcs: C.CKM_SHA384_RSA_PKCS,
    rsaPss: C.CKM_SHA384_RSA_PKCS_PSS,
    ecdsa: C.CKM_ECDSA_SHA384,
    hmac: C.CKM_SHA384_HMAC,
    digestInfo: Buffer.from('3041300d060960864801650304020205000430', 'hex'),
  },
  'SHA-512': {
    digest: C.CKM_SHA512,
    mgf1: C.CKG_MGF1_SHA512,
    rsaPkcs: C.CKM_SHA512_RSA_PKCS,
    rsaPss: C.CKM_SHA512_RSA_PKCS_PSS,
    ecdsa: C.CKM_ECDSA_SHA512,
    hmac: C.CKM_SHA512_HMAC,
    digestInfo: Buffer.from('3051300d060960864801650304020305000440', 'hex'),
  },
}
