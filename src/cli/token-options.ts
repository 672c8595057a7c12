/**
 * The token options every command shares, and how they become `Pkcs11Crypto.open` options.
 * The library itself reads PKCS11_MODULE, PKCS11_TOKEN, PKCS11_PIN and PKCS11_PIN_FILE.
 */
import { readFileSync } from 'node:fs'
import { InvalidArgumentError, type Command } from 'commander'
import { Pkcs11Crypto, type OpenOptions, type TokenSelector } from '../index.js'
import { devTokenOptions, ensureDevKeys, environmentNamesNoToken } from './dev-token.js'
import { UsageError, rememberSecret } from './errors.js'
import type { CliIo } from './io.js'

/** The shared options as commander parses them. */
export interface TokenFlags {
  module?: string
  token?: string
  serial?: string
  slotIndex?: number
  config?: string
  uri?: string
  pin?: string
  pinFile?: string
  libraryParameters?: string
}

/** The options of the development token, when this run uses it. */
let devOptions: OpenOptions | undefined

/** Parses a non-negative integer option value. */
export function parseIndex(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('not a non-negative integer')
  return Number(value)
}

/** Adds the token options to `command`. */
export function addTokenOptions(command: Command): Command {
  return command
    .option('--module <path>', 'PKCS#11 module (library) to load (env PKCS11_MODULE)')
    .option('--token <label>', 'token label (env PKCS11_TOKEN)')
    .option('--serial <serial>', 'token serial number')
    .option('--slot-index <n>', "index in the slot list (as Java's slotListIndex)", parseIndex)
    .option('--config <file>', 'Java SunPKCS11 config file (name, library, slot / slotListIndex)')
    .option('--uri <uri>', 'RFC 7512 pkcs11: URI (token=..., module-path=..., pin-value=...)')
    .option('--pin <pin>', 'user PIN (env PKCS11_PIN; prefer --pin-file)')
    .option('--pin-file <file>', 'file holding the user PIN (env PKCS11_PIN_FILE)')
    .option('--library-parameters <string>', "C_Initialize library parameters (NSS softokn: \"configdir='sql:DIR' certPrefix='' keyPrefix='' secmod='secmod.db' flags=\")")
}

/** True when the flags name a module, token, config, URI or PIN. */
function flagsNameToken(flags: TokenFlags): boolean {
  return [flags.module, flags.token, flags.serial, flags.slotIndex, flags.config, flags.uri, flags.pin, flags.pinFile, flags.libraryParameters].some((v) => v !== undefined)
}

/** Remembers every PIN the flags or the environment could carry, so no message ever shows it. */
function rememberPins(flags: TokenFlags, env: NodeJS.ProcessEnv): void {
  rememberSecret(flags.pin)
  rememberSecret(flags.libraryParameters)
  rememberSecret(env.PKCS11_PIN)
  for (const file of [flags.pinFile, env.PKCS11_PIN_FILE]) {
    if (!file) continue
    try {
      rememberSecret(readFileSync(file, 'utf8').replace(/\r?\n$/, ''))
    } catch {
      // the library reports an unreadable PIN file
    }
  }
  // A PIN inside --uri (or --key) needs no remembering: every message goes through redact().
}

/**
 * `Pkcs11Crypto.open` options for the flags and `io.env`; with no flag and no PKCS11_*
 * environment, those of the built-in development token (announced on `io.stderr`).
 *
 * @example
 * const hsm = await Pkcs11Crypto.open(openOptions({ config: 'hsm.cfg', pinFile: 'pin.txt' }, processIo()))
 */
export function openOptions(flags: TokenFlags, io: Pick<CliIo, 'env' | 'stderr'>): OpenOptions {
  rememberPins(flags, io.env)
  const selectors = [flags.token, flags.serial, flags.slotIndex].filter((v) => v !== undefined)
  if (selectors.length > 1) throw new UsageError('give at most one of --token, --serial and --slot-index')
  if (flags.pin !== undefined && flags.pinFile !== undefined) throw new UsageError('give --pin or --pin-file, not both')
  if (!flagsNameToken(flags) && environmentNamesNoToken(io.env)) return (devOptions = devTokenOptions(io.env, io.stderr))
  let token: TokenSelector | undefined
  if (flags.token !== undefined) token = { label: flags.token }
  else if (flags.serial !== undefined) token = { serial: flags.serial }
  else if (flags.slotIndex !== undefined) token = { slotIndex: flags.slotIndex }
  return { library: flags.module, token, config: flags.config, uri: flags.uri, pin: flags.pin, pinFile: flags.pinFile, libraryParameters: flags.libraryParameters, env: io.env }
}

/** Opens the token of the flags, runs `use`, and closes it again. */
export async function withToken<T>(flags: TokenFlags, io: CliIo, use: (hsm: Pkcs11Crypto) => Promise<T>): Promise<T> {
  const options = openOptions(flags, io)
  const hsm = await Pkcs11Crypto.open(options)
  try {
    if (options === devOptions) await ensureDevKeys(hsm)
    return await use(hsm)
  } finally {
    await hsm.close()
  }
}
