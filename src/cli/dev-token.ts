/**
 * The built-in development token: with no token configured (no option, no PKCS11_MODULE /
 * PKCS11_TOKEN / PKCS11_PIN), commands use a SoftHSM token that is created on first use in the
 * tool's own data folder, with its own softhsm2.conf and a random PIN in a 0600 file. Its keys
 * (dev-rs256, dev-es256, dev-eddsa, each with a self-signed certificate) are made on the token
 * when missing. It is a software token, for development only.
 *
 * It only ever touches what it made: the folder carries a marker file of its own, and a folder
 * that holds anything else is refused. The first run makes the token and its keys under a lock
 * file, so that concurrent first runs make one token with one key each. Its PINs never appear on
 * a command line: the token is initialized through the binding (C_InitToken, C_InitPIN).
 */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync, writeSync, closeSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import pkcs11js from 'pkcs11js'
import { ConfigurationError, KeyExistsError, type OpenOptions, type Pkcs11Crypto } from '../index.js'
import { rememberSecret } from './errors.js'

const DEV_TOKEN_LABEL = 'dev'

const SOFTHSM_MODULES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
  '/opt/homebrew/lib/softhsm/libsofthsm2.so',
]

/** The keys of the development token: label and JOSE algorithm. */
export const DEV_KEYS: ReadonlyArray<{ label: string; alg: string }> = [
  { label: 'dev-rs256', alg: 'RS256' },
  { label: 'dev-es256', alg: 'ES256' },
  { label: 'dev-eddsa', alg: 'EdDSA' },
]

/** The marker file: its presence says the folder is this tool's; `complete` that the keys were made. */
const MARKER = 'pkcs11-webcrypto-dev-token.json'
const LOCK = '.lock'
/** What the tool writes in the folder, and nothing else. */
const OURS = new Set([MARKER, LOCK, 'softhsm2.conf', 'tokens', 'user-pin'])
/** How long a run waits for another one that is making the token. */
const LOCK_WAIT_MS = 120_000

/**
 * The lock this process holds on a first run, released once the keys exist (`made`: this run made
 * the token). A run that waited for another's first run keeps it through its own start too: the
 * first processes to open a new SoftHSM token at once made it answer CKR_GENERAL_ERROR here.
 */
let firstRun: { home: string; made: boolean; release: () => void } | undefined

/** Makes the development keys that are missing, each with a self-signed certificate; on a first run, then marks the token complete. */
export async function ensureDevKeys(hsm: Pkcs11Crypto): Promise<void> {
  try {
    const present = new Set((await hsm.keys.list()).map((key) => key.label))
    for (const { label, alg } of DEV_KEYS) {
      if (present.has(label)) continue
      try {
        await hsm.keys.generate({ algorithm: alg, label, certificate: { subject: `CN=${label}, O=pkcs11-webcrypto development token` } })
      } catch (error) {
        // Made meanwhile by another run (a key the user deleted, made again by two runs at once).
        if (!(error instanceof KeyExistsError)) throw error
      }
    }
    if (firstRun?.made) writeMarker(firstRun.home, true)
  } finally {
    firstRun?.release()
    firstRun = undefined
  }
}

/** True when nothing in the environment names a token, so the development token applies. */
export function environmentNamesNoToken(env: NodeJS.ProcessEnv): boolean {
  return !env.PKCS11_MODULE && !env.PKCS11_TOKEN && !env.PKCS11_PIN && !env.PKCS11_PIN_FILE
}

/** The folder of the development token: PKCS11_WEBCRYPTO_HOME, else $XDG_DATA_HOME/pkcs11-webcrypto. */
function devTokenHome(env: NodeJS.ProcessEnv): string {
  return env.PKCS11_WEBCRYPTO_HOME || join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'pkcs11-webcrypto')
}

/**
 * Open options for the development token, creating it first when needed (under the folder's lock,
 * held until ensureDevKeys has made its keys). Sets process.env.SOFTHSM2_CONF (SoftHSM reads it
 * when the module is loaded) and announces the token on `announce`.
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
  // Complete means made, keys and all; a token without its PIN file is of no use and is made again.
  const made = () => markerOf(home)?.complete === true && existsSync(pinFile)
  if (!made()) {
    checkOwnFolder(home)
    mkdirSync(home, { recursive: true, mode: 0o700 })
    const release = lock(home)
    try {
      // Another run may have made it while this one waited.
      checkOwnFolder(home)
      const making = !made()
      if (making) {
        writeMarker(home, false)
        if (!existsSync(pinFile)) create(module, home, conf, pinFile)
      }
      firstRun = { home, made: making, release }
    } finally {
      if (!firstRun) release()
    }
  }
  const pin = readFileSync(pinFile, 'utf8').trim()
  rememberSecret(pin)
  announce.write(`pkcs11-jwt: using the built-in development token (SoftHSM, software only) in ${home}\n`)
  return { library: module, token: { label: DEV_TOKEN_LABEL }, pin, env: {} }
}

function markerOf(home: string): { complete: boolean } | undefined {
  try {
    return JSON.parse(readFileSync(join(home, MARKER), 'utf8')) as { complete: boolean }
  } catch {
    return undefined
  }
}

function writeMarker(home: string, complete: boolean): void {
  writeFileSync(join(home, MARKER), `${JSON.stringify({ tool: 'pkcs11-webcrypto', complete })}\n`, { mode: 0o600 })
}

/**
 * A ConfigurationError unless `home` is absent, empty, or this tool's (its marker, or the layout
 * an earlier version made: its softhsm2.conf exactly, tokens/ and user-pin, nothing else).
 */
function checkOwnFolder(home: string): void {
  // The marker's presence is what counts: another run may be writing it right now.
  if (!existsSync(home) || existsSync(join(home, MARKER))) return
  const entries = readdirSync(home).filter((name) => name !== LOCK)
  if (entries.length === 0) return
  const earlier =
    entries.every((name) => OURS.has(name)) &&
    entries.includes('user-pin') &&
    entries.includes('softhsm2.conf') &&
    readFileSync(join(home, 'softhsm2.conf'), 'utf8') === softHsmConf(join(home, 'tokens'))
  if (earlier) return writeMarker(home, true)
  throw new ConfigurationError(
    `${home} holds files the development token did not make (${entries.slice(0, 5).join(', ')}); ` +
      'point PKCS11_WEBCRYPTO_HOME at an empty or new folder, or name a token (--module, --config, --uri)',
  )
}

function softHsmConf(tokens: string): string {
  return `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`
}

/** Takes the folder's lock file (waiting for a live holder, taking over a dead one's); returns its release. */
function lock(home: string): () => void {
  const path = join(home, LOCK)
  const deadline = Date.now() + LOCK_WAIT_MS
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o600)
      writeSync(fd, String(process.pid))
      closeSync(fd)
      const release = () => {
        process.off('exit', release)
        try {
          unlinkSync(path)
        } catch {
          /* already gone */
        }
      }
      process.on('exit', release)
      return release
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
    if (!holderAlive(path)) {
      rmSync(path, { force: true })
      continue
    }
    if (Date.now() > deadline) throw new ConfigurationError(`another pkcs11-jwt has been making the development token in ${home} for ${LOCK_WAIT_MS / 1000} s (${path})`)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
  }
}

function holderAlive(path: string): boolean {
  let pid: number
  try {
    pid = Number(readFileSync(path, 'utf8'))
  } catch {
    return true // being written, or just released: look again
  }
  if (!Number.isInteger(pid) || pid <= 0) return true
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Makes the token store and the token through the binding (C_InitToken, C_InitPIN), so that no PIN
 * is ever on a command line; the PIN file is written last, as the mark of a made token. Only what
 * this tool made (its tokens/ folder) is removed first, after an interrupted run.
 */
function create(module: string, home: string, conf: string, pinFile: string): void {
  const tokens = join(home, 'tokens')
  const pin = randomBytes(8).toString('hex')
  const soPin = randomBytes(8).toString('hex')
  rememberSecret(pin)
  rememberSecret(soPin)
  const native = new pkcs11js.PKCS11()
  try {
    rmSync(tokens, { recursive: true, force: true })
    mkdirSync(tokens, { recursive: true, mode: 0o700 })
    writeFileSync(conf, softHsmConf(tokens))
    native.load(module)
    native.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
    try {
      const [free] = native.C_GetSlotList(true)
      // pkcs11js pads a short label with NULs; PKCS#11 wants blanks.
      native.C_InitToken(free, soPin, DEV_TOKEN_LABEL.padEnd(32))
      const slot = native.C_GetSlotList(true).find((s) => native.C_GetTokenInfo(s).label.trim() === DEV_TOKEN_LABEL)!
      const session = native.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
      native.C_Login(session, pkcs11js.CKU_SO, soPin)
      native.C_InitPIN(session, pin)
      native.C_Logout(session)
      native.C_CloseSession(session)
    } finally {
      native.C_Finalize()
    }
    writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 })
  } catch (cause) {
    throw new ConfigurationError(`cannot create the built-in development token in ${home}: ${(cause as Error).message}`, { cause })
  } finally {
    native.close()
  }
}
