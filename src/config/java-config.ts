/**
 * Java SunPKCS11 configuration files (`name = ...`, `library = ...`, `slot = ...` or
 * `slotListIndex = ...`), so the file of a Nimbus JOSE+JWT setup opens the same token here.
 */
import { readFileSync } from 'node:fs'
import { ConfigurationError } from '../errors.js'

export interface JavaConfig {
  name?: string
  library?: string
  slot?: bigint
  slotListIndex?: number
  description?: string
  /** NSS's softokn as the library: its C_Initialize parameters ("configdir='sql:DIR' ..."). */
  nssArgs?: string
  /** NSS mode: where libsoftokn3 is, the NSS database, which of its tokens, and how the database opens. */
  nssLibraryDirectory?: string
  nssSecmodDirectory?: string
  nssModule?: string
  nssDbMode?: string
}

/**
 * Parses the text of a SunPKCS11 config. Sections in braces (`attributes(...) = { ... }`,
 * `disabledMechanisms = { ... }`) only tune Java's provider and are skipped.
 *
 * @example
 * parseJavaConfig('name = NitroKeyHSM\nlibrary = /usr/lib/x86_64-linux-gnu/\nslotListIndex = 1')
 * // { name: 'NitroKeyHSM', library: '/usr/lib/x86_64-linux-gnu/', slotListIndex: 1 }
 */
export function parseJavaConfig(text: string, source = 'config'): JavaConfig {
  const config: JavaConfig = {}
  let depth = 0
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.replace(/#.*$/, '').trim()
    if (!line) return
    if (depth > 0 || line.includes('{')) {
      depth += count(line, '{') - count(line, '}')
      return
    }
    const match = /^([\w.()*-]+)\s*=\s*(.*)$/.exec(line)
    if (!match) throw new ConfigurationError(`${source}:${index + 1}: expected "key = value"`)
    const [, key, rawValue] = match
    const value = expandProperties(rawValue.replace(/^"(.*)"$/, '$1'))
    switch (key) {
      case 'name': config.name = value; break
      case 'library': config.library = value; break
      case 'description': config.description = value; break
      case 'slot': config.slot = parseInteger(value, key, source, index); break
      case 'slotListIndex': config.slotListIndex = Number(parseInteger(value, key, source, index)); break
      case 'nssArgs': case 'nssLibraryDirectory': case 'nssSecmodDirectory': case 'nssModule': case 'nssDbMode': config[key] = value; break
      default: // Java-only tuning (handleStartupErrors, attributes, ...): not ours to apply.
    }
  })
  return config
}

/** Reads and parses a SunPKCS11 config file. */
export function readJavaConfig(path: string): JavaConfig {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (cause) {
    throw new ConfigurationError(`cannot read config file ${path}: ${(cause as NodeJS.ErrnoException).code}`, { cause })
  }
  return parseJavaConfig(text, path)
}

function count(text: string, char: string): number {
  return text.split(char).length - 1
}

function parseInteger(value: string, key: string, source: string, index: number): bigint {
  try {
    return BigInt(value)
  } catch {
    throw new ConfigurationError(`${source}:${index + 1}: ${key} must be an integer`)
  }
}

/** `${java.home}` style references: Java system properties have no meaning here, but env does. */
function expandProperties(value: string): string {
  return value.replace(/\$\{([^}]+)\}/g, (_, name: string) => process.env[name] ?? '')
}
