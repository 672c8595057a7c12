/** `pkcs11-jwt jwks`: a JWKS of the token's public keys. */
import { Option, type Command } from 'commander'
import { publishedJwk, type JwksOptions } from '../../index.js'
import { FailureError, UsageError } from '../errors.js'
import { addKeyOptions, checkAlgorithm, describeSelector, keySelector, listedAlgorithms, type KeyFlags } from '../key-options.js'
import { printJson } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface JwksFlags extends TokenFlags, KeyFlags {
  kid: NonNullable<JwksOptions['kid']>
  alg?: string
}

export function register(program: Command, io: CliIo): void {
  addKeyOptions(addTokenOptions(program.command('jwks')))
    .description("print a JWKS of the token's public keys (or of one key) as JSON")
    .addOption(new Option('--kid <kind>', 'what kid is').choices(['thumbprint', 'id', 'label']).default('thumbprint'))
    .option('--alg <alg>', 'with --key: publish the key for this algorithm only (its "alg" member)')
    .addHelpText(
      'after',
      `
A key that serves one JOSE algorithm on the token is published with it as "alg" (ES256 for a P-256
key); an RSA key serves RS256..PS512 and is published without "alg", so that JWTs from \`sign\` with
any of them verify. --alg pins one.

Example:
  $ pkcs11-jwt jwks --token demo --pin-file pin.txt > jwks.json
  $ pkcs11-jwt jwks --key signer --kid label
  $ pkcs11-jwt jwks --key rsa2048 --alg PS256
`,
    )
    .action(async (flags: JwksFlags) => {
      const selector = keySelector(flags, false)
      if (flags.alg !== undefined) {
        checkAlgorithm(flags.alg)
        if (selector === undefined) throw new UsageError('--alg is for one key: name it with --key or --key-id')
      }
      const jwks = await withToken(flags, io, async (hsm) => {
        if (selector === undefined) return hsm.jwks({ kid: flags.kid })
        const key = await hsm.keys.get(selector, flags.alg === undefined ? {} : { algorithm: flags.alg })
        if (!key.publicKey) throw new FailureError(`key ${describeSelector(selector)} has no public key on the token`)
        // As hsm.jwks() publishes it: an alg only for a key that serves one.
        const served = flags.alg === undefined ? await listedAlgorithms(hsm, key) : [flags.alg]
        const alg = served.length === 1 ? served[0] : undefined
        return { keys: [await publishedJwk(key, alg, { kid: flags.kid })] }
      })
      printJson(io.stdout, jwks)
    })
}
