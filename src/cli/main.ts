/**
 * pkcs11-jwt: JWTs signed with keys that stay on a PKCS#11 token. One module per command under
 * ./commands, each exporting `register(program, io)`; a new command (keygen, bench) is one more
 * file and one more line in COMMANDS. `bin.ts` runs `main` on the process; tests run it in theirs.
 */
import { readFileSync } from 'node:fs'
import { Command, CommanderError } from 'commander'
import * as algorithms from './commands/algorithms.js'
import * as bench from './commands/bench.js'
import * as decrypt from './commands/decrypt.js'
import * as demo from './commands/demo.js'
import * as encrypt from './commands/encrypt.js'
import * as keygen from './commands/keygen.js'
import * as jwks from './commands/jwks.js'
import * as keys from './commands/keys.js'
import * as sign from './commands/sign.js'
import * as slots from './commands/slots.js'
import * as verify from './commands/verify.js'
import { EXIT_OK, EXIT_USAGE, describeError, rememberSecret, scrub } from './errors.js'
import type { CliIo } from './io.js'

const COMMANDS: ReadonlyArray<{ register(program: Command, io: CliIo): void }> = [slots, algorithms, keys, keygen, sign, verify, encrypt, decrypt, jwks, bench, demo]

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }
    return pkg.version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/** A PIN given on the command line is masked even in usage errors. */
function rememberArgvPins(argv: string[]): void {
  argv.forEach((arg, index) => {
    if (arg === '--pin') rememberSecret(argv[index + 1])
    else if (arg.startsWith('--pin=')) rememberSecret(arg.slice('--pin='.length))
  })
}

function buildProgram(io: CliIo): Command {
  const program = new Command('pkcs11-jwt')
    .description('JWTs signed with keys that stay on a PKCS#11 token (smart card, HSM, SoftHSM)')
    .version(version())
    .showHelpAfterError(false)
    .exitOverride()
    // commander's own error text may run over two lines; main() prints it as one.
    .configureOutput({ writeOut: (text) => io.stdout.write(text), writeErr: (text) => io.stderr.write(text), outputError: () => undefined })
    .addHelpText(
      'after',
      `
Token options (every command): --module PATH, --token LABEL | --serial S | --slot-index N,
--config FILE (Java SunPKCS11), --uri pkcs11:..., --pin PIN | --pin-file F
(env PKCS11_MODULE, PKCS11_TOKEN, PKCS11_PIN, PKCS11_PIN_FILE). With none of them, a built-in
SoftHSM development token is made on first use under $PKCS11_WEBCRYPTO_HOME or
$XDG_DATA_HOME/pkcs11-webcrypto.

Exit status: 0 done, 1 operation or verification failed, 2 bad usage or configuration.

Example:
  $ pkcs11-jwt keys
  $ pkcs11-jwt sign --key dev-es256 --sub alice --exp 1h | pkcs11-jwt verify --key dev-es256
`,
    )
  for (const command of COMMANDS) command.register(program, io)
  return program
}

/**
 * Runs pkcs11-jwt with `args` (what follows the command name) on `io`; resolves to the exit status.
 *
 * @example
 * process.exitCode = await main(process.argv.slice(2), processIo())
 */
export async function main(args: string[], io: CliIo): Promise<number> {
  rememberArgvPins(args)
  try {
    await buildProgram(io).parseAsync(args, { from: 'user' })
    return EXIT_OK
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.exitCode === 0 || error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT_OK
      if (error.code === 'commander.help') return EXIT_USAGE // help shown for a missing command
      io.stderr.write(`pkcs11-jwt: ${scrub(error.message.replace(/^error:\s*/, ''))}\n`)
      return EXIT_USAGE
    }
    const { message, exitCode } = describeError(error)
    io.stderr.write(`pkcs11-jwt: ${message}\n`)
    return exitCode
  }
}
