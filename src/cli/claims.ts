/** The claims options of `sign` and `encrypt`: a JSON object (argument, file or stdin) and the registered claims as flags. */
import { randomUUID } from 'node:crypto'
import { Option, type Command } from 'commander'
import type { EncryptJWT, SignJWT } from 'jose'
import { UsageError } from './errors.js'
import { parseJsonObject, readStdin, readText } from './input.js'
import type { CliIo } from './io.js'

export interface ClaimFlags {
  claims?: string
  claimsFile?: string
  iss?: string
  sub?: string
  aud?: string[]
  exp?: string
  nbf?: string
  iat: boolean
  jti?: string | true
}

/** Adds --claims, --claims-file, --iss, --sub, --aud, --exp, --nbf, --no-iat and --jti to `command`. */
export function addClaimOptions(command: Command): Command {
  return command
    .option('--claims <json>', 'claims as a JSON object')
    .option('--claims-file <file>', 'file with the claims as a JSON object (- for stdin)')
    .option('--iss <issuer>', 'iss claim')
    .option('--sub <subject>', 'sub claim')
    .option('--aud <audience>', 'aud claim (repeat for several)', (value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .option('--exp <time>', 'exp claim: a duration from now (1h, 30m, 2d) or seconds since the epoch')
    .option('--nbf <time>', 'nbf claim: a duration from now or seconds since the epoch')
    .option('--no-iat', 'leave out the iat claim (set to now by default)')
    .addOption(new Option('--jti [id]', 'jti claim (a random UUID when no value is given)'))
}

/** A time claim: seconds since the epoch, or a jose duration ('1h', '30 min', '-5m'). */
function timeClaim(value: string | undefined, name: string): number | string | undefined {
  if (value === undefined) return undefined
  if (/^\d+$/.test(value)) return Number(value)
  if (!/^[+-]?\s*\d+(\.\d+)?\s*[a-z]+(\s+(ago|from now))?$/i.test(value.trim()))
    throw new UsageError(`--${name} ${JSON.stringify(value)} is neither seconds since the epoch nor a duration like 1h`)
  return value
}

/**
 * The claims the flags say, as a function that sets them on a JWT builder (checked before the
 * token is opened: a usage error costs no login).
 */
export async function readClaims(flags: ClaimFlags, io: CliIo): Promise<{ claims: Record<string, unknown>; apply: (builder: SignJWT | EncryptJWT) => void }> {
  const exp = timeClaim(flags.exp, 'exp')
  const nbf = timeClaim(flags.nbf, 'nbf')
  if (flags.claims !== undefined && flags.claimsFile !== undefined) throw new UsageError('give --claims or --claims-file, not both')
  let claims: Record<string, unknown> = {}
  if (flags.claims !== undefined) claims = parseJsonObject(flags.claims, '--claims')
  else if (flags.claimsFile !== undefined) claims = parseJsonObject(await readText(flags.claimsFile, 'claims file', io.stdin), `claims file ${flags.claimsFile}`)
  else {
    const stdin = (await readStdin(io.stdin)).trim()
    if (stdin) claims = parseJsonObject(stdin, 'the claims on stdin')
  }
  const apply = (builder: SignJWT | EncryptJWT) => {
    if (flags.iss !== undefined) builder.setIssuer(flags.iss)
    if (flags.sub !== undefined) builder.setSubject(flags.sub)
    if (flags.aud !== undefined) builder.setAudience(flags.aud.length === 1 ? flags.aud[0] : flags.aud)
    if (flags.iat) builder.setIssuedAt()
    if (exp !== undefined) builder.setExpirationTime(exp)
    if (nbf !== undefined) builder.setNotBefore(nbf)
    if (flags.jti !== undefined) builder.setJti(flags.jti === true ? randomUUID() : flags.jti)
  }
  return { claims, apply }
}
