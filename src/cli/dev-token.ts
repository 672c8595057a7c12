/**
 * The built-in development token: with no token configured (no option, no PKCS11_MODULE /
 * PKCS11_TOKEN / PKCS11_PIN), commands use a SoftHSM token that is created on first use in the
 * tool's own data folder, with its own softhsm2.conf, a random PIN in a 0600 file and three key
 * pairs generated on the token by OpenSC's pkcs11-tool (dev-rs256, dev-es256, dev-eddsa).
 * It is a software token, for development only.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { OpenOptions } from '../config/options.js'
import { ConfigurationError } from '../errors.js'
import { rememberSecret } from './errors.js'

export const DEV_TOKEN_LABEL = 'dev'

const SOFTHSM_MODULES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
]

/** The keys made on a new development token: label, pkcs11-tool key type, CKA_ID. */
export const DEV_KEYS: ReadonlyArray<{ label: string, keyType: string, id: string }> = [
  { label: 'dev-rs256', keyType: 'rsa:2048', id: 'a1' },
  { label: 'dev-es256', keyType: 'EC:prime256v1', id: 'a2' },
  { label: 'dev-eddsa', keyType: 'EC:edwards25519', id: 'a3' },
]

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
export function devTokenOptions(env: NodeJS.ProcessEnv = process.env): OpenOptions {
  const module = SOFTHSM_MODULES.find((path) => existsSync(path))
  if (!module) {
    throw new ConfigurationError('no token configured (give --module, --config or --uri, or set PKCS11_MODULE) and SoftHSM is not installed for the built-in development token')
  }
  const home = devTokenHome(env)
  const conf = join(home, 'softhsm2.conf')
  const pinFile = join(home, 'user-pin')
  process.env.SOFTHSM2_CONF = conf
  if (!existsSync(pinFile)) create(module, home, conf, pinFile)
  const pin = readFileSync(pinFile, 'utf8').trim()
  rememberSecret(pin)
  process.stderr.write(`pkcs11-jwt: using the built-in development token (SoftHSM, software only) in ${home}\n`)
  return { library: module, token: { label: DEV_TOKEN_LABEL }, pin, env: {} }
}

/** Makes the token store, the token and its keys; the PIN file is written last, as the mark of a complete token. */
function create(module: string, home: string, conf: string, pinFile: string): void {
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
    try {
      for (const { label, keyType, id } of DEV_KEYS) {
        run('pkcs11-tool', ['--module', module, '--login', '--pin', pin, '--keypairgen', '--key-type', keyType, '--label', label, '--id', id])
      }
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw cause
      process.stderr.write('pkcs11-jwt: pkcs11-tool (OpenSC) is not installed; the development token was made without keys\n')
    }
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 })
    chmodSync(pinFile, 0o600)
  } catch (cause) {
    const { code, stderr } = cause as NodeJS.ErrnoException & { stderr?: Buffer }
    const detail = code === 'ENOENT' ? 'softhsm2-util is not installed' : (stderr?.toString().trim() || (cause as Error).message)
    throw new ConfigurationError(`cannot create the built-in development token in ${home}: ${detail}`, { cause })
  }
}
