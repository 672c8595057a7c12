/**
 * RFC 7512 `pkcs11:` URIs: path attributes select the token and object, query attributes say
 * which module and PIN to use.
 */
import { ConfigurationError } from '../errors.js'

export interface Pkcs11Uri {
  token?: string
  serial?: string
  slotId?: bigint
  manufacturer?: string
  model?: string
  /** CKA_LABEL of the object. */
  object?: string
  /** CKA_ID as bytes. */
  id?: Buffer
  type?: 'private' | 'public' | 'cert' | 'secret-key' | 'data'
  modulePath?: string
  pinValue?: string
  /** A file path (from `pin-source=file:...` or a plain path). */
  pinSource?: string
  /** C_Initialize's library parameters, from the vendor query attribute `x-library-parameters`. */
  libraryParameters?: string
}

const PATH_ATTRIBUTES: Record<string, (uri: Pkcs11Uri, value: Buffer) => void> = {
  token: (uri, v) => { uri.token = v.toString('utf8') },
  serial: (uri, v) => { uri.serial = v.toString('utf8') },
  manufacturer: (uri, v) => { uri.manufacturer = v.toString('utf8') },
  model: (uri, v) => { uri.model = v.toString('utf8') },
  'slot-id': (uri, v) => { uri.slotId = BigInt(v.toString('utf8')) },
  object: (uri, v) => { uri.object = v.toString('utf8') },
  id: (uri, v) => { uri.id = v },
  type: (uri, v) => {
    const type = v.toString('utf8')
    if (!['private', 'public', 'cert', 'secret-key', 'data'].includes(type)) throw new ConfigurationError(`pkcs11 URI: unknown type "${type}"`)
    uri.type = type as Pkcs11Uri['type']
  },
}

const QUERY_ATTRIBUTES: Record<string, (uri: Pkcs11Uri, value: Buffer) => void> = {
  'module-path': (uri, v) => { uri.modulePath = v.toString('utf8') },
  'pin-value': (uri, v) => { uri.pinValue = v.toString('utf8') },
  'pin-source': (uri, v) => { uri.pinSource = v.toString('utf8').replace(/^file:(\/\/)?/, '') },
  'x-library-parameters': (uri, v) => { uri.libraryParameters = v.toString('utf8') },
}

/**
 * Parses a `pkcs11:` URI. Unknown attributes are ignored, as RFC 7512 asks.
 *
 * @example
 * parsePkcs11Uri('pkcs11:token=demo;id=%01;type=private?pin-value=1234')
 * // { token: 'demo', id: <Buffer 01>, type: 'private', pinValue: '1234' }
 */
export function parsePkcs11Uri(text: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(text)) throw new ConfigurationError('a PKCS#11 URI starts with "pkcs11:"')
  const [path, query = ''] = text.slice('pkcs11:'.length).split('?', 2)
  const uri: Pkcs11Uri = {}
  apply(uri, path, ';', PATH_ATTRIBUTES)
  apply(uri, query, '&', QUERY_ATTRIBUTES)
  return uri
}

/** True when `text` looks like a PKCS#11 URI. */
export function isPkcs11Uri(text: unknown): text is string {
  return typeof text === 'string' && /^pkcs11:/i.test(text)
}

function apply(uri: Pkcs11Uri, part: string, separator: string, known: Record<string, (uri: Pkcs11Uri, value: Buffer) => void>): void {
  for (const pair of part.split(separator)) {
    if (!pair) continue
    const eq = pair.indexOf('=')
    if (eq < 1) throw new ConfigurationError(`pkcs11 URI: expected "name=value", got "${pair.split('=')[0]}"`)
    const name = pair.slice(0, eq).toLowerCase()
    known[name]?.(uri, percentDecode(pair.slice(eq + 1)))
  }
}

function percentDecode(value: string): Buffer {
  const bytes: number[] = []
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '%') {
      const hex = value.slice(i + 1, i + 3)
      if (!/^[0-9a-f]{2}$/i.test(hex)) throw new ConfigurationError('pkcs11 URI: bad percent-encoding')
      bytes.push(parseInt(hex, 16))
      i += 2
    } else {
      bytes.push(...Buffer.from(value[i], 'utf8'))
    }
  }
  return Buffer.from(bytes)
}
