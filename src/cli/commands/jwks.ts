/** `pkcs11-jwt jwks`: a JWKS of the token's public keys. */
import { Option, type Command } from 'commander'
import { publishedJwk, type JwksOptions } from '../../keys/jwks.js'
import { FailureError } from '../errors.js'
import { addKeyOptions, describeSelector, keyForAlgorithm, keySelector, type KeyFlags } from '../key-options.js'
import { printJson } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'

interface JwksFlags extends TokenFlags, KeyFlags {
  kid: NonNullable<JwksOptions['kid']>
}

export function register(program: Command): void {
  addKeyOptions(addTokenOptions(program.command('jwks')))
    .description('print a JWKS of the token\'s public keys (or of one key) as JSON')
    .addOption(new Option('--kid <kind>', 'what kid is').choices(['thumbprint', 'id', 'label']).default('thumbprint'))
    .addHelpText('after', '\nExample:\n  $ pkcs11-jwt jwks --token demo --pin-file pin.txt > jwks.json\n  $ pkcs11-jwt jwks --key signer --kid label\n')
    .action(async (flags: JwksFlags) => {
      const selector = keySelector(flags, false)
      const jwks = await withToken(flags, async (hsm) => {
        if (selector === undefined) return hsm.jwks({ kid: flags.kid })
        const { key, alg } = await keyForAlgorithm(hsm, selector, undefined)
        if (!key.publicKey) throw new FailureError(`key ${describeSelector(selector)} has no public key on the token`)
        return { keys: [await publishedJwk(key, alg, { kid: flags.kid })] }
      })
      printJson(jwks)
    })
}
