/**
 * Java SunPKCS11 configuration files (`name = ...`, `library = ...`, `slot = ...` or
 * `slotListIndex = ...`), so the file of a Nimbus JOSE+JWT setup opens the same token here.
 * The grammar is SunPKCS11's: `#` comments, double-quoted values (which may hold `#`), braces only
 * for the sections that take them, `${property}` in the library path expanded from the few Java
 * system properties that mean something outside a JVM, an attribute at most once, and a value
 * for every attribute.
 */
import { readFileSync } from 'node:fs'
import { homedir, tmpdir, userInfo } from 'node:os'
import { delimiter, sep } from 'node:path'
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

/** Sections whose value may be a `{ ... }` block: Java-only tuning, skipped here. */
const SECTIONS = /^(attributes(\(.*\))?|disabledMechanisms|enabledMechanisms)$/

/** The Java system properties SunPKCS11 configs use in paths, as this process knows them (never the environment). */
const SYSTEM_PROPERTIES: Readonly<Record<string, () => string>> = {
  'user.home': homedir,
  'user.dir': () => process.cwd(),
  'user.name': () => userInfo().username,
  'java.io.tmpdir': tmpdir,
  'file.separator': () => sep,
  'path.separator': () => delimiter,
}

/**
 * Parses the text of a SunPKCS11 config. Sections in braces (`attributes(...) = { ... }`,
 * `disabledMechanisms = { ... }`) only tune Java's provider and are skipped.
 *
 * @example
 * parseJavaConfig('name = NitroKeyHSM\nlibrary = ${user.home}/lib/opensc-pkcs11.so\nslotListIndex = 1')
 * // { name: 'NitroKeyHSM', library: '/home/me/lib/opensc-pkcs11.so', slotListIndex: 1 }
 */
export function parseJavaConfig(text: string, source = 'config'): JavaConfig {
  const config: JavaConfig = {}
  const seen = new Set<string>()
  const lines = text.split(/\r?\n/)
  for (let index = 0; index < lines.length; index++) {
    const where = `${source}:${index + 1}`
    if (/^\s*(#.*)?$/.test(lines[index])) continue
    const match = /^\s*([\w.*-]+(?:\([^)]*\))?)\s*=\s*(.*)$/.exec(lines[index])
    if (!match) throw new ConfigurationError(`${where}: expected "key = value"`)
    const [, key, rest] = match
    if (SECTIONS.test(key)) {
      if (rest.trimStart().startsWith('{')) index = endOfBlock(lines, index, rest, source)
      continue
    }
    if (seen.has(key)) throw new ConfigurationError(`${where}: ${key} is given twice`)
    seen.add(key)
    const value = readValue(rest, key, where)
    switch (key) {
      case 'library':
        config.library = expandProperties(value, key, where)
        break
      case 'slot':
        config.slot = parseInteger(value, key, where)
        break
      case 'slotListIndex':
        config.slotListIndex = Number(parseInteger(value, key, where))
        break
      case 'name':
      case 'description':
      case 'nssArgs':
      case 'nssLibraryDirectory':
      case 'nssSecmodDirectory':
      case 'nssModule':
      case 'nssDbMode':
        config[key] = value
        break
      default: // Java-only tuning (handleStartupErrors, showInfo, ...): not ours to apply.
    }
  }
  if (config.slot !== undefined && config.slotListIndex !== undefined) {
    throw new ConfigurationError(`${source}: slot and slotListIndex select the same thing; give one of them`)
  }
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

/** A value: a double-quoted string (`\"` and `\\` escaped, `#` kept), or the rest of the line before a comment. */
function readValue(rest: string, key: string, where: string): string {
  const quoted = /^"((?:[^"\\]|\\.)*)"\s*(#.*)?$/.exec(rest)
  if (quoted) return quoted[1].replace(/\\(.)/g, '$1')
  if (rest.startsWith('"')) throw new ConfigurationError(`${where}: the value of ${key} has no closing quote`)
  const value = rest.replace(/#.*$/, '').trim()
  if (!value) throw new ConfigurationError(`${where}: ${key} has no value`)
  if (value.startsWith('{')) throw new ConfigurationError(`${where}: ${key} takes a value, not a { } section`)
  return value
}

/** The index of the line that closes the block opened on line `start`. */
function endOfBlock(lines: string[], start: number, first: string, source: string): number {
  let depth = 0
  for (let index = start; index < lines.length; index++) {
    const line = (index === start ? first : lines[index]).replace(/#.*$/, '')
    depth += count(line, '{') - count(line, '}')
    if (depth <= 0) return index
  }
  throw new ConfigurationError(`${source}:${start + 1}: the { } section is not closed`)
}

function count(text: string, char: string): number {
  return text.split(char).length - 1
}

function parseInteger(value: string, key: string, where: string): bigint {
  // Java reads decimal or 0x hex; BigInt also takes 0o / 0b and surrounding blanks, which Java does not.
  if (!/^(\d+|0x[0-9a-f]+)$/i.test(value)) throw new ConfigurationError(`${where}: ${key} must be an integer`)
  return BigInt(value)
}

/** `${user.home}` style references, as SunPKCS11 expands them in paths; an unknown property is an error, as in Java. */
function expandProperties(value: string, key: string, where: string): string {
  return value.replace(/\$\{([^}]*)\}/g, (_, name: string) => {
    const property = Object.hasOwn(SYSTEM_PROPERTIES, name) ? SYSTEM_PROPERTIES[name] : undefined
    if (!property)
      throw new ConfigurationError(`${where}: ${key} uses \${${name}}, a Java system property with no value outside Java (known: ${Object.keys(SYSTEM_PROPERTIES).join(', ')})`)
    return property()
  })
}
