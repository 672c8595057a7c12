/** `pkcs11-jwt verify`: checks a JWT's signature and time claims with a token key or a JWKS file. */
import type { Command } from 'commander'
import type { errors, JSONWebKeySet, JWTVerifyOptions, JWTVerifyResult } from 'jose'
import { FailureError, UsageError } from '../errors.js'
import { parseJsonObject, readStdin, readText } from '../input.js'
import { addKeyOptions, checkAlgorithm, keySelector, type KeyFlags } from '../key-options.js'
import { printJson } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface VerifyFlags extends TokenFlags, KeyFlags {
  jwks?: string
  iss?: string
  aud?: string
  alg?: string[]
}

/** Turns jose's verdict into a one-line reason with exit 1. */
function invalid(cause: unknown, JOSEError: typeof errors.JOSEError): never {
  if (cause instanceof JOSEError) throw new FailureError(`invalid token: ${cause.message} (${cause.code})`, { cause })
  throw cause
}

export function register(program: Command, io: CliIo): void {
  addKeyOptions(addTokenOptions(program.command('verify')))
    .description('verify a JWT (signature, exp, nbf and the given claims); prints its header and payload as JSON')
    .argument('[token]', 'the compact JWT (default: read from stdin)')
    .option('--jwks <file>', 'verify with the keys of a JWKS file instead of a token key')
    .option('--iss <issuer>', 'require this iss claim')
    .option('--aud <audience>', 'require this aud claim')
    .option('--alg <alg>', 'accept only this algorithm (repeat for several)', (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .addHelpText(
      'after',
      `
Exit status 1 with the reason on stderr when the token is invalid.

Example:
  $ pkcs11-jwt verify --key signer eyJhbGciOiJSUzI1NiJ9...
  $ pkcs11-jwt sign --key signer --exp 5m | pkcs11-jwt verify --jwks jwks.json
`,
    )
    .action(async (argument: string | undefined, flags: VerifyFlags) => {
      const { createLocalJWKSet, decodeProtectedHeader, errors, jwtVerify } = await import('jose')
      const rejected = (cause: unknown) => invalid(cause, errors.JOSEError)
      const selector = keySelector(flags, false)
      flags.alg?.forEach((alg) => checkAlgorithm(alg))
      if (selector !== undefined && flags.jwks !== undefined) throw new UsageError('give --key / --key-id or --jwks, not both')
      if (selector === undefined && flags.jwks === undefined) throw new UsageError('name the verification key with --key, --key-id or --jwks FILE')
      const jwt = (argument ?? (await readStdin(io.stdin))).trim()
      if (!jwt) throw new UsageError('no token: give it as an argument or on stdin')
      const options: JWTVerifyOptions = { issuer: flags.iss, audience: flags.aud, algorithms: flags.alg }

      let result: JWTVerifyResult
      if (flags.jwks !== undefined) {
        const jwks = parseJsonObject(await readText(flags.jwks, 'JWKS file', io.stdin), `JWKS file ${flags.jwks}`)
        if (!Array.isArray(jwks.keys)) throw new UsageError(`JWKS file ${flags.jwks} has no "keys" array`)
        result = await jwtVerify(jwt, createLocalJWKSet(jwks as unknown as JSONWebKeySet), options).catch(rejected)
      } else {
        let alg: string | undefined
        try {
          alg = decodeProtectedHeader(jwt).alg
        } catch (cause) {
          throw new FailureError(`invalid token: ${(cause as Error).message}`, { cause })
        }
        if (!alg) throw new FailureError('invalid token: its header has no alg')
        result = await withToken(flags, io, async (hsm) => {
          const key = await hsm.keys.get(selector!, { algorithm: alg })
          const uninstall = hsm.installGlobal()
          try {
            return await jwtVerify(jwt, key.publicKey ?? key.privateKey, options).catch(rejected)
          } finally {
            uninstall()
          }
        })
      }
      printJson(io.stdout, { header: result.protectedHeader, payload: result.payload })
    })
}
