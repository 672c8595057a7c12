/**
 * Where the module, token and PIN come from: explicit options first, then a `pkcs11:` URI, then a
 * Java SunPKCS11 config file, then the environment (PKCS11_MODULE, PKCS11_TOKEN, PKCS11_PIN,
 * PKCS11_PIN_FILE).
 */
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigurationError } from '../errors.js'
import type { SessionKeyCopies } from '../pkcs11/dispatch/session-copies.js'
import type { InPlaceMode } from '../pkcs11/dispatch/worker-pool.js'
import type { TokenOptions } from '../pkcs11/token.js'
import type { TokenSelector } from '../pkcs11/slots.js'
import { checkOpenOptions } from './check-options.js'
import { readJavaConfig } from './java-config.js'
import { nssOptions } from './nss.js'
import { parsePkcs11Uri } from './pkcs11-uri.js'

/** Options of `Pkcs11Crypto.open`. */
export interface OpenOptions {
  /** Path of the PKCS#11 library (default: env PKCS11_MODULE). */
  library?: string
  /** Which token (default: env PKCS11_TOKEN as a label, else the only token present). */
  token?: TokenSelector
  /** User PIN (default: env PKCS11_PIN). */
  pin?: string
  /** File holding the user PIN (default: env PKCS11_PIN_FILE). */
  pinFile?: string
  /**
   * C_Initialize's library parameters, for modules that take them in NSS's extended arguments
   * (NSS's softokn: "configdir='sql:/etc/pki/nssdb' certPrefix='' keyPrefix='' secmod='secmod.db' flags=").
   * Never shown in a message: they may hold a password.
   */
  libraryParameters?: string
  /** A Java SunPKCS11 config file, as in the Nimbus JOSE+JWT HSM guide. */
  config?: string
  /** An RFC 7512 URI: `pkcs11:token=demo?module-path=...&pin-value=...`. */
  uri?: string
  /** Upper bound on the sessions opened (default 8): one for lookups, the others sign on worker threads. */
  maxSessions?: number
  /**
   * How long a call may wait, in ms, for a session or for the token to come back from a removal or
   * error (default 30,000); then it fails with an error that names the CKR_ code that stopped it.
   */
  timeout?: number
  /** Calls that may wait for a session at once; more fail at once with QueueFullError (default 10,000). */
  maxQueue?: number
  /**
   * How long, in ms, a search of the token that found objects is reused (default 5,000; 0: every
   * lookup searches). `keys.list()` and `jwks()` show objects made or removed by other
   * applications once it has passed; a search that found nothing is never reused.
   */
  searchCacheMs?: number
  /**
   * Signatures of a kind the device makes in 2 ms or less (measured), of inputs under 64 KiB, may be
   * made on the main thread, saving the two thread hand-overs of a signing worker:
   * - `'auto'` (default): when no other call is under way; and on a software token, while the main
   *   thread has time to spare, a share of the signatures of kinds made in 0.5 ms or less (ECDSA,
   *   EdDSA), beside one worker fewer than cores (the last one starts for a decrypt, an RSA
   *   signature, or a main thread busy with other work);
   * - `'alone'`: only when no other call is under way;
   * - `'always'`: every such signature (a process per core, each opened with `maxSessions: 3`:
   *   signing spread over the cores by the processes, not by threads);
   * - `'never'`: for a device that may stall (a network HSM faster than 2 ms: a stall in place
   *   would hold the event loop).
   * Modules whose loads do not share a login across threads (p11-kit's client) never sign in
   * place. Calls in place back to back hold the event loop 1 ms (and one call) at most before it turns.
   */
  inPlace?: InPlaceMode
  /**
   * Whether signatures use copies of their keys made as session objects (C_CopyObject with
   * CKA_TOKEN false, one per signing session): `'software'` (default) on a software slot (no
   * CKF_HW_SLOT), such as SoftHSM's, where each use of a token key checks its file under a lock per
   * token, so that one process's threads sign in turn; `'always'`; `'never'`. A copy keeps the key's
   * attributes but its id and label (its own, so that no search finds it), goes with its session, is made again from the key each second, and is dropped once
   * this process changes or deletes any of the token's objects: a key deleted by another application
   * stops signing here within a second. A key the module will not copy is used as it is.
   */
  sessionKeyCopies?: SessionKeyCopies
  /** Environment to read defaults from (default: process.env). */
  env?: Record<string, string | undefined>
}

/** Modules tried, in order, when a config names a directory as its library. */
const MODULES_IN_A_DIRECTORY = ['softhsm/libsofthsm2.so', 'libsofthsm2.so', 'opensc-pkcs11.so', 'pkcs11/opensc-pkcs11.so', 'p11-kit-proxy.so']

/**
 * Turns open options into what the token layer needs. The PIN is read here and handed on once.
 *
 * @example
 * resolveOptions({ config: 'hsm-config.cfg', pin: '1234' })
 * // { library: '/usr/lib/softhsm/libsofthsm2.so', token: { slotListIndex: 1 }, pin: '1234' }
 */
export function resolveOptions(options: OpenOptions = {}): TokenOptions {
  const sources = sourcesOf(options)
  const { env, uri, java, nss } = sources
  const { library, libraryParameters } = moduleOf(options, sources)

  const pinFile = options.pinFile ?? uri?.pinSource ?? (options.pin === undefined && uri?.pinValue === undefined ? env.PKCS11_PIN_FILE : undefined)
  // A pin-source is redacted wherever it is shown: its path is not named in the error either.
  const pinFileName = options.pinFile === undefined && pinFile === uri?.pinSource ? "named by the URI's pin-source" : pinFile
  const pin = options.pin ?? uri?.pinValue ?? (pinFile ? readPinFile(pinFile, pinFileName!) : env.PKCS11_PIN)

  return {
    library,
    libraryParameters,
    token: options.token ?? tokenFromUri(uri) ?? tokenFromJava(java) ?? nss.token ?? (env.PKCS11_TOKEN ? { label: env.PKCS11_TOKEN } : undefined),
    pin,
    maxSessions: options.maxSessions,
    timeout: options.timeout,
    maxQueue: options.maxQueue,
    searchCacheMs: options.searchCacheMs,
    inPlace: options.inPlace,
    sessionKeyCopies: options.sessionKeyCopies,
  }
}

/**
 * The module to load and its parameters, read from the options as `resolveOptions` reads them, with
 * no token and no PIN (not even a URI's pin-source is read): what `listSlots` needs.
 *
 * @example
 * resolveModule({ uri: 'pkcs11:token=t?module-path=/usr/lib/softhsm/libsofthsm2.so' }) // { library: '/usr/lib/softhsm/libsofthsm2.so', libraryParameters: undefined }
 */
export function resolveModule(options: OpenOptions = {}): Pick<TokenOptions, 'library' | 'libraryParameters'> {
  return moduleOf(options, sourcesOf(options))
}

/** The options checked, and what they name to read further: the URI, the Java config and its NSS settings, the environment. */
function sourcesOf(options: OpenOptions) {
  checkOpenOptions(options as Record<string, unknown>)
  const java = options.config ? readJavaConfig(options.config) : undefined
  return { env: options.env ?? process.env, uri: options.uri ? parsePkcs11Uri(options.uri) : undefined, java, nss: nssOptions(java) }
}

function moduleOf(options: OpenOptions, { env, uri, java, nss }: ReturnType<typeof sourcesOf>): Pick<TokenOptions, 'library' | 'libraryParameters'> {
  const library = options.library ?? uri?.modulePath ?? java?.library ?? nss.library ?? env.PKCS11_MODULE
  if (!library) throw new ConfigurationError('no PKCS#11 module: give library, config, uri (module-path) or env PKCS11_MODULE')
  return { library: resolveLibrary(library, env), libraryParameters: options.libraryParameters ?? uri?.libraryParameters ?? java?.nssArgs ?? nss.libraryParameters }
}

function tokenFromUri(uri: ReturnType<typeof parsePkcs11Uri> | undefined): TokenSelector | undefined {
  if (uri?.token !== undefined) return { label: uri.token }
  if (uri?.serial !== undefined) return { serial: uri.serial }
  if (uri?.slotId !== undefined) return { slotId: uri.slotId }
  return undefined
}

function tokenFromJava(java: ReturnType<typeof readJavaConfig> | undefined): TokenSelector | undefined {
  if (java?.slot !== undefined) return { slotId: java.slot }
  if (java?.slotListIndex !== undefined) return { slotIndex: java.slotListIndex }
  return undefined
}

/**
 * A library may be given as a directory (the Nimbus guide's example does): then it means
 * PKCS11_MODULE when that lies inside it, else the first well-known module found there.
 */
function resolveLibrary(library: string, env: Record<string, string | undefined>): string {
  if (!existsSync(library) || !statSync(library).isDirectory()) return library
  const fromEnv = env.PKCS11_MODULE
  if (fromEnv && fromEnv.startsWith(join(library, '/')) && existsSync(fromEnv)) return fromEnv
  const found = MODULES_IN_A_DIRECTORY.map((name) => join(library, name)).find((path) => existsSync(path))
  if (!found) throw new ConfigurationError(`library ${library} is a directory with no known PKCS#11 module in it; name the module file`)
  return found
}

function readPinFile(path: string, shown: string): string {
  try {
    return readFileSync(path, 'utf8').replace(/\r?\n$/, '')
  } catch (cause) {
    // Not the cause itself: its message repeats the path.
    throw new ConfigurationError(`cannot read PIN file ${shown}: ${(cause as NodeJS.ErrnoException).code}`)
  }
}
