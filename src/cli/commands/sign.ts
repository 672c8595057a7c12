/** `pkcs11-jwt sign`: a compact JWT signed on the token, through unmodified jose. */
import { randomUUID, webcrypto } from 'node:crypto'
import { Option, type Command } from 'commander'
import type { JWTHeaderParameters } from 'jose'
import { FailureError, UsageError } from '../errors.js'
import { parseJsonObject, readStdin, readText } from '../input.js'
import { addKeyOptions, checkAlgorithm, describeSelector, keyForAlgorithm, keySelector, type KeyFlags } from '../key-options.js'
import { printLine } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface SignFlags extends TokenFlags, KeyFlags {
  alg?: string
  kid?: string
  claims?: string
  claimsFile?: string
  iss?: string
  sub?: string
  aud?: string[]
  exp?: string
  nbf?: string
  iat: boolean
  jti?: string | true
  header?: string
}

/** A time claim: seconds since the epoch, or a jose duration ('1h', '30 min', '-5m'). */
function timeClaim(value: string | undefined, name: string): number | string | undefined {
  if (value === undefined) return undefined
  if (/^\d+$/.test(value)) return Number(value)
  if (!/^[+-]?\s*\d+(\.\d+)?\s*[a-z]+(\s+(ago|from now))?$/i.test(value.trim()))
    throw new UsageError(`--${name} ${JSON.stringify(value)} is neither seconds since the epoch nor a duration like 1h`)
  return value
}

async function readClaims(flags: SignFlags, io: CliIo): Promise<Record<string, unknown>> {
  if (flags.claims !== undefined && flags.claimsFile !== undefined) throw new UsageError('give --claims or --claims-file, not both')
  if (flags.claims !== undefined) return parseJsonObject(flags.claims, '--claims')
  if (flags.claimsFile !== undefined) return parseJsonObject(await readText(flags.claimsFile, 'claims file', io.stdin), `claims file ${flags.claimsFile}`)
  const stdin = (await readStdin(io.stdin)).trim()
  return stdin ? parseJsonObject(stdin, 'the claims on stdin') : {}
}

export function register(program: Command, io: CliIo): void {
  addKeyOptions(addTokenOptions(program.command('sign')))
    .description('sign a JWT with a key on the token; prints the compact JWT on stdout')
    .option('--alg <alg>', "JOSE algorithm (default: the key's first, e.g. RS256, ES256, EdDSA)")
    .option('--kid <kid>', "kid header (default: the key's RFC 7638 thumbprint, as in `jwks`)")
    .option('--claims <json>', 'claims as a JSON object')
    .option('--claims-file <file>', 'file with the claims as a JSON object (- for stdin)')
    .option('--iss <issuer>', 'iss claim')
    .option('--sub <subject>', 'sub claim')
    .option('--aud <audience>', 'aud claim (repeat for several)', (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--exp <time>', 'exp claim: a duration from now (1h, 30m, 2d) or seconds since the epoch')
    .option('--nbf <time>', 'nbf claim: a duration from now or seconds since the epoch')
    .option('--no-iat', 'leave out the iat claim (set to now by default)')
    .addOption(new Option('--jti [id]', 'jti claim (a random UUID when no value is given)'))
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
      const exp = timeClaim(flags.exp, 'exp')
      const nbf = timeClaim(flags.nbf, 'nbf')
      const extraHeader = flags.header === undefined ? {} : parseJsonObject(flags.header, '--header')
      const claims = await readClaims(flags, io)
      // jose is loaded by the commands that use it: keys, slots and algorithms start ~40 ms sooner
      const { SignJWT, calculateJwkThumbprint } = await import('jose')
      const jwt = await withToken(flags, io, async (hsm) => {
        const { key, alg } = await keyForAlgorithm(hsm, selector, flags.alg)
        let kid = flags.kid ?? (typeof extraHeader.kid === 'string' ? extraHeader.kid : undefined)
        if (kid === undefined && key.publicKey) kid = await calculateJwkThumbprint(await webcrypto.subtle.exportKey('jwk', key.publicKey))
        const header: JWTHeaderParameters = { ...extraHeader, alg }
        if (kid !== undefined) header.kid = kid
        const builder = new SignJWT(claims).setProtectedHeader(header)
        if (flags.iss !== undefined) builder.setIssuer(flags.iss)
        if (flags.sub !== undefined) builder.setSubject(flags.sub)
        if (flags.aud !== undefined) builder.setAudience(flags.aud.length === 1 ? flags.aud[0] : flags.aud)
        if (flags.iat) builder.setIssuedAt()
        if (exp !== undefined) builder.setExpirationTime(exp)
        if (nbf !== undefined) builder.setNotBefore(nbf)
        if (flags.jti !== undefined) builder.setJti(flags.jti === true ? randomUUID() : flags.jti)
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
