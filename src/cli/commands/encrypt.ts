/** `pkcs11-jwt encrypt`: a compact JWE of claims, with a token secret key or the public half of a token key pair, through unmodified jose. */
import type { Command } from 'commander'
import { JOSE_ALGORITHMS } from '../../index.js'
import { addClaimOptions, readClaims, type ClaimFlags } from '../claims.js'
import { FailureError, UsageError } from '../errors.js'
import { addKeyOptions, checkAlgorithm, describeSelector, keySelector, type KeyFlags } from '../key-options.js'
import { printLine } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

const ENCS = ['A128GCM', 'A192GCM', 'A256GCM', 'A128CBC-HS256', 'A192CBC-HS384', 'A256CBC-HS512']

interface EncryptFlags extends TokenFlags, KeyFlags, ClaimFlags {
  alg: string
  enc?: string
  kid?: string
}

export function register(program: Command, io: CliIo): void {
  addClaimOptions(
    addKeyOptions(addTokenOptions(program.command('encrypt')))
      .description('encrypt claims into a JWE with a key on the token; prints the compact JWE on stdout')
      .requiredOption('--alg <alg>', 'key management: RSA-OAEP*, ECDH-ES*, A128KW.., A128GCMKW.., or dir (with a token AES key)')
      .option('--enc <enc>', `content encryption: ${ENCS.join(', ')} (default A256GCM; for dir, the key's A*GCM)`)
      .option('--kid <kid>', 'kid header'),
  )
    .addHelpText(
      'after',
      `
RSA-OAEP and ECDH-ES encrypt with the public key (no token operation); A*KW, A*GCMKW and dir with
the token secret key itself. With no --claims or --claims-file, claims are read as JSON from stdin.

Example:
  $ pkcs11-jwt encrypt --key decrypter --alg RSA-OAEP --sub alice --exp 5m
  $ pkcs11-jwt encrypt --key aes --alg A256KW --enc A128CBC-HS256 --claims '{"scope":"read"}'
`,
    )
    .action(async (flags: EncryptFlags) => {
      const selector = keySelector(flags, true)
      const dir = flags.alg === 'dir'
      if (!dir) checkAlgorithm(flags.alg)
      if (!dir && JOSE_ALGORITHMS[flags.alg].use !== 'enc') throw new UsageError(`--alg ${flags.alg} is a signature algorithm; use sign`)
      if (flags.enc !== undefined && !ENCS.includes(flags.enc)) throw new UsageError(`--enc ${JSON.stringify(flags.enc)}: one of ${ENCS.join(', ')}`)
      if (dir && flags.enc !== undefined && !flags.enc.endsWith('GCM'))
        throw new UsageError('dir takes a token AES key with A128GCM, A192GCM or A256GCM (jose takes raw bytes for the CBC-HS ones)')
      const { claims, apply } = await readClaims(flags, io)
      const { EncryptJWT } = await import('jose')
      const jwe = await withToken(flags, io, async (hsm) => {
        // dir: the key's algorithm is the content encryption (A256GCM for a 256-bit key, by default).
        const key = await hsm.keys.get(selector, { algorithm: dir ? flags.enc : flags.alg })
        const enc = dir ? joseAesName(key.privateKey) : (flags.enc ?? 'A256GCM')
        const builder = new EncryptJWT(claims).setProtectedHeader({ alg: flags.alg, enc, ...(flags.kid === undefined ? {} : { kid: flags.kid }) })
        apply(builder)
        const uninstall = hsm.installGlobal()
        try {
          return await builder.encrypt(key.privateKey.type === 'secret' ? key.privateKey : key.publicKey!)
        } catch (cause) {
          throw new FailureError(`encrypting with key ${describeSelector(selector)} (${flags.alg}) failed: ${(cause as Error).message}`, { cause })
        } finally {
          uninstall()
        }
      })
      printLine(io.stdout, jwe)
    })
}

/** 'A256GCM' for a 256-bit AES-GCM key. */
function joseAesName(key: CryptoKey): string {
  return `A${(key.algorithm as AesKeyAlgorithm).length}GCM`
}
