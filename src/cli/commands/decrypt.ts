/** `pkcs11-jwt decrypt`: decrypts a compact JWE with a key on the token, through unmodified jose. */
import type { Command } from 'commander'
import { FailureError, UsageError } from '../errors.js'
import { readStdin } from '../input.js'
import { addKeyOptions, describeSelector, keySelector, type KeyFlags } from '../key-options.js'
import { printJson } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

export function register(program: Command, io: CliIo): void {
  addKeyOptions(addTokenOptions(program.command('decrypt')))
    .description('decrypt a compact JWE with a key on the token; prints its protected header and the claims (or the plaintext) as JSON')
    .argument('[jwe]', 'the compact JWE (default: read from stdin)')
    .addHelpText(
      'after',
      `
The key is used with the JWE's own alg (its enc for dir). Exit status 1 when it does not decrypt.

Example:
  $ pkcs11-jwt decrypt --key decrypter eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ...
  $ pkcs11-jwt encrypt --key aes --alg A256KW --sub alice | pkcs11-jwt decrypt --key aes
`,
    )
    .action(async (argument: string | undefined, flags: KeyFlags & TokenFlags) => {
      const selector = keySelector(flags, true)
      const jwe = (argument ?? (await readStdin(io.stdin))).trim()
      if (!jwe) throw new UsageError('no JWE: give it as an argument or on stdin')
      const { compactDecrypt, decodeProtectedHeader, errors } = await import('jose')
      let header: { alg?: string; enc?: string }
      try {
        header = decodeProtectedHeader(jwe)
      } catch (cause) {
        throw new FailureError(`not a JWE: ${(cause as Error).message}`, { cause })
      }
      if (!header.alg || !header.enc) throw new FailureError('not a JWE: its protected header has no alg or enc')
      const result = await withToken(flags, io, async (hsm) => {
        const key = await hsm.keys.get(selector, { algorithm: header.alg === 'dir' ? header.enc : header.alg })
        const uninstall = hsm.installGlobal()
        try {
          return await compactDecrypt(jwe, key.privateKey)
        } catch (cause) {
          if (cause instanceof errors.JOSEError) throw new FailureError(`it does not decrypt with key ${describeSelector(selector)}: ${cause.message} (${cause.code})`, { cause })
          throw cause
        } finally {
          uninstall()
        }
      })
      const text = new TextDecoder().decode(result.plaintext)
      printJson(io.stdout, { header: result.protectedHeader, ...contentOf(text) })
    })
}

/** Claims when the plaintext is a JSON object, else the plaintext as text. */
function contentOf(text: string): { payload: unknown } | { plaintext: string } {
  try {
    const value: unknown = JSON.parse(text)
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return { payload: value }
  } catch {
    // not JSON: the plaintext as it is
  }
  return { plaintext: text }
}
