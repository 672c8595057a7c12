/** `pkcs11-jwt keygen`: a key pair made on the token, non-extractable, with a self-signed certificate. */
import type { Command } from 'commander'
import { JOSE_ALGORITHMS, publishedJwk } from '../../index.js'
import { UsageError } from '../errors.js'
import { checkAlgorithm } from '../key-options.js'
import { printJson, printTable } from '../output.js'
import { addTokenOptions, parseIndex, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface KeygenFlags extends TokenFlags {
  alg: string
  label: string
  id?: string
  subject?: string
  days?: number
  bits?: number
  curve?: string
  json?: boolean
}

export function register(program: Command, io: CliIo): void {
  addTokenOptions(program.command('keygen'))
    .description("generate a non-extractable key pair on the token, with a self-signed certificate beside it (so Java's SunPKCS11 sees it too)")
    .requiredOption(
      '--alg <alg>',
      'JOSE algorithm the key is for: RS256..PS512 (RSA), ES256/ES384/ES512 (P-256/384/521), EdDSA, HS256..HS512 (secret); ' +
        'RSA-OAEP*, ECDH-ES (see --curve), A128KW.., A128GCMKW.., A128GCM.. (AES) for JWE',
    )
    .requiredOption('--label <label>', 'CKA_LABEL of the new key')
    .option('--id <hex>', 'CKA_ID in hex (default: SHA-1 of the public key)')
    .option('--subject <dn>', 'certificate subject (default: CN=<label>)')
    .option('--days <n>', 'certificate validity in days (default 365)', parseIndex)
    .option('--bits <n>', 'RSA modulus size (default 2048)', parseIndex)
    .option('--curve <curve>', 'curve of an ECDH-ES key: P-256 (default), P-384, P-521, X25519')
    .option('--json', 'print the new key as JSON (with its public JWK)')
    .addHelpText('after', '\nExample:\n  $ pkcs11-jwt keygen --alg ES256 --label signer --subject "CN=signer, O=Example" --days 730\n')
    .action(async (flags: KeygenFlags) => {
      checkAlgorithm(flags.alg)
      if (flags.id !== undefined && !/^([0-9a-f]{2})+$/i.test(flags.id)) throw new UsageError(`--id ${JSON.stringify(flags.id)} is not even-length hex`)
      if (flags.curve !== undefined && (flags.alg !== 'ECDH-ES' || !['P-256', 'P-384', 'P-521', 'X25519'].includes(flags.curve))) {
        throw new UsageError('--curve is for --alg ECDH-ES: P-256, P-384, P-521 or X25519')
      }
      // A self-signed certificate needs a key that signs: none for secret keys and JWE key pairs.
      const certified = JOSE_ALGORITHMS[flags.alg].use === undefined && JOSE_ALGORITHMS[flags.alg].kty !== 'oct'
      await withToken(flags, io, async (hsm) => {
        const key = await hsm.keys.generate({
          algorithm: flags.alg,
          label: flags.label,
          id: flags.id,
          modulusLength: flags.bits,
          namedCurve: flags.curve,
          certificate: certified ? { subject: flags.subject ?? `CN=${flags.label}`, days: flags.days } : undefined,
        })
        const jwk = key.publicKey ? await publishedJwk(key, flags.alg) : undefined
        if (flags.json) return printJson(io.stdout, { id: key.id, label: key.label, alg: flags.alg, certificate: key.certificate?.subject, jwk })
        printTable(io.stdout, ['ID', 'LABEL', 'ALG', 'CERTIFICATE', 'KID'], [[key.id, key.label, flags.alg, key.certificate?.subject ?? '-', jwk?.kid ?? '-']])
      })
    })
}
