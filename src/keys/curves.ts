/**
 * Curves by their CKA_EC_PARAMS encoding. OpenSC's `--key-type EC:edwards25519` writes the
 * PrintableString "edwards25519" where others write the Ed25519 OID: both are read.
 */
export interface Curve {
  /** WebCrypto / JWK name. */
  name: 'P-256' | 'P-384' | 'P-521' | 'Ed25519' | 'X25519'
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
  // SoftHSM 2.6.1 has no CKK_EC_MONTGOMERY, but makes X25519 keys with CKM_EC_EDWARDS_KEY_PAIR_GEN and this OID.
  { name: 'X25519', kty: 'OKP', size: 32, params: der('06032b656e') },
]

const ALIASES = new Map<string, Curve>([
  [der('130c656477617264733235353139').toString('hex'), CURVES[3]], // PrintableString "edwards25519"
  [der('130745643235353139').toString('hex'), CURVES[3]], // PrintableString "Ed25519"
  [der('130a63757276653235353139').toString('hex'), CURVES[4]], // PrintableString "curve25519"
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

/**
 * A point as CKA_EC_POINT holds it: a DER OCTET STRING. A P-521 point (133 bytes) needs the long
 * length form. Written here, not with @peculiar/asn1-schema: importing that costs ~35 ms, more
 * than all of jose, on every import of the library (`node benchmarks/startup.js`: 1.63x jose
 * with it, 1.12x without), for two bytes of header.
 */
export function wrapPoint(point: Buffer): Buffer {
  const length = point.length < 0x80 ? Buffer.from([point.length]) : Buffer.from([0x81, point.length])
  return Buffer.concat([Buffer.from([0x04]), length, point])
}

/**
 * The point of CKA_EC_POINT without its DER OCTET STRING wrapping (PKCS#11 asks for the wrapping;
 * some modules leave it off). An uncompressed EC point also starts with 0x04, so length decides.
 * The point is what the wrapping's header leaves: tpm2-pkcs11 writes a P-521 point's length (133)
 * in one byte, which DER would read as a long form.
 */
export function unwrapPoint(point: Buffer, curve: Curve): Buffer {
  const rawLength = curve.kty === 'EC' ? 1 + 2 * curve.size : curve.size
  if (point.length === rawLength) return point
  if (point[0] !== 0x04 || point.length < rawLength + 2 || point.length > rawLength + 3) throw new Error('CKA_EC_POINT is neither a point nor an OCTET STRING')
  return point.subarray(point.length - rawLength)
}
