/** Ed25519 (JOSE EdDSA): pure EdDSA, CKM_EDDSA without parameters. */
import { C } from '../../pkcs11/binding.js'
import type { Mechanisms } from '../../pkcs11/signer.js'
import { SignatureAlgorithm, type SignatureStep } from './signature-algorithm.js'

export class Ed25519 extends SignatureAlgorithm {
  readonly name = 'Ed25519'

  isSupportedBy(token: Mechanisms): boolean {
    return token.hasMechanism(C.CKM_EDDSA)
  }

  protected step(_: unknown, __: unknown, data: Buffer): SignatureStep {
    return { mechanism: { mechanism: C.CKM_EDDSA }, input: data }
  }
}
