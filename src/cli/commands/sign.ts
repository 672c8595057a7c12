/** `pkcs11-jwt sign`: a compact JWT signed on the token, through unmodified jose. */
import type { Command } from 'commander'
import type { JWTHeaderParameters } from 'jose'
import { publishedJwk } from '../../index.js'
import { addClaimOptions, readClaims, type ClaimFlags } from '../claims.js'
import { FailureError } from '../errors.js'
import { parseJsonObject } from '../input.js'
import { addKeyOptions, checkAlgorithm, describeSelector, keyForAlgorithm, keySelector, type KeyFlags } from '../key-options.js'
import { printLine } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface SignFlags extends TokenFlags, KeyFlags, ClaimFlags {
  alg?: string
  kid?: string
  header?: string
}

export function register(program: Command, io: CliIo): void {
  addClaimOptions(
    addKeyOptions(addTokenOptions(program.command('sign')))
      .description('sign a JWT with a key on the token; prints the compact JWT on stdout')
      .option('--alg <alg>', "JOSE algorithm (default: the key's first, e.g. RS256, ES256, EdDSA)")
      .option('--kid <kid>', "kid header (default: the key's RFC 7638 thumbprint, as in `jwks`)"),
  )
    .option('--header <json>', 'further protected header parameters as a JSON object (e.g. {"typ":"JWT"})')
    .addHelpText(
      'after',
      `
With no --claims or --claims-file, claims are read as JSON from stdin when it is not a terminal.

Example:
  $ pkcs11-jwt sign --key signer --sub alice --aud api --exp 1h
  $ echo '{"scope":"read"}' | pkcs11-jwt sign --key-id 01 --alg PS256 --pin-file pin.txt
`,
    )
    .action(async (flags: SignFlags) => {
      const selector = keySelector(flags, true)
      if (flags.alg !== undefined) checkAlgorithm(flags.alg)
      const extraHeader = flags.header === undefined ? {} : parseJsonObject(flags.header, '--header')
      const { claims, apply } = await readClaims(flags, io)
      // jose is loaded by the commands that use it: keys, slots and algorithms start ~40 ms sooner
      const { SignJWT } = await import('jose')
      const jwt = await withToken(flags, io, async (hsm) => {
        const { key, alg } = await keyForAlgorithm(hsm, selector, flags.alg)
        let kid = flags.kid ?? (typeof extraHeader.kid === 'string' ? extraHeader.kid : undefined)
        // The kid jwks publishes the key with (RFC 7638 thumbprint).
        if (kid === undefined && key.publicKey) kid = (await publishedJwk(key)).kid
        const header: JWTHeaderParameters = { ...extraHeader, alg }
        if (kid !== undefined) header.kid = kid
        const builder = new SignJWT(claims).setProtectedHeader(header)
        apply(builder)
        const uninstall = hsm.installGlobal()
        try {
          return await builder.sign(key.privateKey)
        } catch (cause) {
          throw new FailureError(`signing with key ${describeSelector(selector)} (${alg}) failed: ${(cause as Error).message}`, { cause })
        } finally {
          uninstall()
        }
      })
      printLine(io.stdout, jwt)
    })
}
