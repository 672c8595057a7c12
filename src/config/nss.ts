/**
 * NSS's softokn as SunPKCS11 reaches it in "NSS mode" (`nssLibraryDirectory`, `nssSecmodDirectory`,
 * `nssModule`, `nssDbMode`): libsoftokn3 from that directory, initialized with the database's
 * parameters, and the token `nssModule` names. With `library` and `nssArgs` instead, the parameters
 * are said whole and nothing here applies.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigurationError } from '../errors.js'
import type { TokenSelector } from '../pkcs11/slots.js'
import type { JavaConfig } from './java-config.js'

/** Where libsoftokn3 is looked for when no nssLibraryDirectory is given. */
const LIBRARY_DIRECTORIES = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib']
const SOFTOKN = 'libsoftokn3.so'

/** The softokn tokens nssModule names: its key and certificate database, or crypto without keys. */
const NSS_TOKENS: Record<string, string> = { keystore: 'NSS Certificate DB', crypto: 'NSS Generic Crypto Services' }

/** softokn's flags for each nssDbMode (noDb as NSS_NoDB_Init opens it). */
const DB_FLAGS: Record<string, string> = { readWrite: '', readOnly: 'readOnly', noDb: 'readOnly,noCertDB,noModDB,forceOpen,optimizeSpace' }

export interface NssOptions {
  library?: string
  libraryParameters?: string
  token?: TokenSelector
}

/**
 * What a SunPKCS11 config's NSS keys mean here; nothing when it has none of them.
 *
 * @example
 * nssOptions({ nssSecmodDirectory: '/etc/pki/nssdb' })
 * // { library: '/usr/lib/x86_64-linux-gnu/libsoftokn3.so', token: { label: 'NSS Certificate DB' },
 * //   libraryParameters: "configdir='/etc/pki/nssdb' certPrefix='' keyPrefix='' secmod='secmod.db' flags=" }
 */
export function nssOptions(java: JavaConfig | undefined): NssOptions {
  if (!java || [java.nssLibraryDirectory, java.nssSecmodDirectory, java.nssModule, java.nssDbMode].every((v) => v === undefined)) return {}
  const mode = java.nssDbMode ?? 'readWrite'
  if (!(mode in DB_FLAGS)) throw new ConfigurationError(`nssDbMode must be readWrite, readOnly or noDb, not "${mode}"`)
  const database = mode === 'noDb' ? undefined : java.nssSecmodDirectory
  // As SunPKCS11: the key database when there is one, else the crypto token.
  const module = java.nssModule ?? (database ? 'keystore' : 'crypto')
  if (!(module in NSS_TOKENS)) throw new ConfigurationError(`nssModule "${module}" is not supported: use keystore or crypto`)
  if (module === 'keystore' && !database) throw new ConfigurationError('nssModule keystore needs nssSecmodDirectory (and an nssDbMode other than noDb)')
  const directories = java.nssLibraryDirectory ? [java.nssLibraryDirectory] : LIBRARY_DIRECTORIES
  const library = directories.map((directory) => join(directory, SOFTOKN)).find(existsSync)
  if (!library) throw new ConfigurationError(`no ${SOFTOKN} in ${directories.join(', ')}: set nssLibraryDirectory`)
  const libraryParameters = `configdir=${quoted(database ?? '')} certPrefix='' keyPrefix='' secmod=${quoted(database ? 'secmod.db' : '')} flags=${DB_FLAGS[mode]}`
  return { library, libraryParameters, token: { label: NSS_TOKENS[module] } }
}

/** An NSS parameter value in single quotes, its quotes and backslashes escaped. */
function quoted(value: string): string {
  return `'${value.replace(/['\\]/g, '\\$&')}'`
}
