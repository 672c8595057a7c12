/**
 * The built-in development token: with no token configured (no option, no PKCS11_MODULE /
 * PKCS11_TOKEN / PKCS11_PIN), commands use a SoftHSM token that is created on first use in the
 * tool's own data folder, with its own softhsm2.conf and a random PIN in a 0600 file. Its keys
 * (dev-rs256, dev-es256, dev-eddsa, each with a self-signed certificate) are made on the token
 * when missing. It is a software token, for development only.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { ConfigurationError, type OpenOptions, type Pkcs11Crypto } from '../index.js'
import { rememberSecret } from './errors.js'

export const DEV_TOKEN_LABEL = 'dev'

const SOFTHSM_MODULES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
]

/** The keys of the development token: label and JOSE algorithm. */
export const DEV_KEYS: ReadonlyArray<{ label: string, alg: string }> = [
  { label: 'dev-rs256', alg: 'RS256' },
  { label: 'dev-es256', alg: 'ES256' },
  { label: 'dev-eddsa', alg: 'EdDSA' },
]

/** Makes the development keys that are missing, each with a self-signed certificate. */
export async function ensureDevKeys(hsm: Pkcs11Crypto): Promise<void> {
  const present = new Set((await hsm.keys.list()).map((key) => key.label))
  for (const { label, alg } of DEV_KEYS) {
    if (present.has(label)) continue
    await hsm.keys.generate({ algorithm: alg, label, certificate: { subject: `CN=${label}, O=pkcs11-webcrypto development token` } })
  }
}

/** True when nothing in the environment names a token, so the development token applies. */
export function environmentNamesNoToken(env: NodeJS.ProcessEnv = process.env): boolean {
  return !env.PKCS11_MODULE && !env.PKCS11_TOKEN && !env.PKCS11_PIN && !env.PKCS11_PIN_FILE
}

/** The folder of the development token: PKCS11_WEBCRYPTO_HOME, else $XDG_DATA_HOME/pkcs11-webcrypto. */
export function devTokenHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.PKCS11_WEBCRYPTO_HOME || join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'pkcs11-webcrypto')
}

/**
 * Open options for the development token, creating it first when needed. Sets
 * process.env.SOFTHSM2_CONF (SoftHSM reads it when the module is loaded) and announces the token
 * on stderr.
 */
export function devTokenOptions(env: NodeJS.ProcessEnv, announce: Writable): OpenOptions {
  const module = SOFTHSM_MODULES.find((path) => existsSync(path))
  if (!module) {
    throw new ConfigurationError('no token configured (give --module, --config or --uri, or set PKCS11_MODULE) and SoftHSM is not installed for the built-in development token')
  }
  const home = devTokenHome(env)
  const conf = join(home, 'softhsm2.conf')
  const pinFile = join(home, 'user-pin')
  process.env.SOFTHSM2_CONF = conf
  if (!existsSync(pinFile)) create(home, conf, pinFile)
  const pin = readFileSync(pinFile, 'utf8').trim()
  rememberSecret(pin)
  announce.write(`pkcs11-jwt: using the built-in development token (SoftHSM, software only) in ${home}\n`)
  return { library: module, token: { label: DEV_TOKEN_LABEL }, pin, env: {} }
}

/** Makes the token store, the token and its keys; the PIN file is written last, as the mark of a complete token. */
function create(home: string, conf: string, pinFile: string): void {
  const tokens = join(home, 'tokens')
  try {
    rmSync(tokens, { recursive: true, force: true }) // what an interrupted creation left behind
    mkdirSync(tokens, { recursive: true, mode: 0o700 })
    writeFileSync(conf, `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`)
    const pin = randomBytes(8).toString('hex')
    const soPin = randomBytes(8).toString('hex')
    rememberSecret(pin)
    rememberSecret(soPin)
    const childEnv = { ...process.env, SOFTHSM2_CONF: conf }
    const run = (command: string, args: string[]) => execFileSync(command, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] })
    run('softhsm2-util', ['--init-token', '--free', '--label', DEV_TOKEN_LABEL, '--pin', pin, '--so-pin', soPin])
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 })
    chmodSync(pinFile, 0o600)
  } catch (cause) {
    const { code, stderr } = cause as NodeJS.ErrnoException & { stderr?: Buffer }
    const detail = code === 'ENOENT' ? 'softhsm2-util is not installed' : (stderr?.toString().trim() || (cause as Error).message)
    throw new ConfigurationError(`cannot create the built-in development token in ${home}: ${detail}`, { cause })
  }
}
