/**
 * Curves by their CKA_EC_PARAMS encoding. OpenSC's `--key-type EC:edwards25519` writes the
 * PrintableString "edwards25519" where others write the Ed25519 OID: both are read.
 */
import { AsnConvert, OctetString } from '@peculiar/asn1-schema'

export interface Curve {
  /** WebCrypto / JWK name. */
  name: 'P-256' | 'P-384' | 'P-521' | 'Ed25519'
  kty: 'EC' | 'OKP'
  /** Bytes of one coordinate (and of a signature half). */
  size: number
  /** DER of the named-curve OID, as CKA_EC_PARAMS holds it. */
  params: Buffer
}

const der = (hex: string) => Buffer.from(hex, 'hex')

export const CURVES: readonly Curve[] = [
  { name: 'P-256', kty: 'EC', size: 32, params: der('06082a8648ce3d030107') },
  { name: 'P-384', kty: 'EC', size: 48, params: der('06052b81040022') },
  { name: 'P-521', kty: 'EC', size: 66, params: der('06052b81040023') },
  { name: 'Ed25519', kty: 'OKP', size: 32, params: der('06032b6570') },
]

const ALIASES = new Map<string, Curve>([
  [der('130c656477617264733235353139').toString('hex'), CURVES[3]], // PrintableString "edwards25519"
  [der('130745643235353139').toString('hex'), CURVES[3]], // PrintableString "Ed25519"
])

/** The curve that CKA_EC_PARAMS names, or undefined for one this library does not serve. */
export function curveOfParams(params: Buffer | undefined): Curve | undefined {
  if (!params) return undefined
  return CURVES.find((curve) => curve.params.equals(params)) ?? ALIASES.get(params.toString('hex'))
}

/** The curve called `name`. */
export function curveNamed(name: string): Curve | undefined {
  return CURVES.find((curve) => curve.name === name)
}

/** A point as CKA_EC_POINT holds it: a DER OCTET STRING. */
export function wrapPoint(point: Buffer): Buffer {
  return Buffer.from(AsnConvert.serialize(new OctetString(point)))
}

/**
 * The point of CKA_EC_POINT without its DER OCTET STRING wrapping (PKCS#11 asks for the wrapping;
 * some modules leave it off). An uncompressed EC point also starts with 0x04, so length decides.
 */
export function unwrapPoint(point: Buffer, curve: Curve): Buffer {
  const rawLength = curve.kty === 'EC' ? 1 + 2 * curve.size : curve.size
  if (point.length === rawLength) return point
  try {
    return Buffer.from(AsnConvert.parse(point, OctetString).buffer)
  } catch (cause) {
    throw new Error('CKA_EC_POINT is neither a point nor an OCTET STRING', { cause })
  }
}
