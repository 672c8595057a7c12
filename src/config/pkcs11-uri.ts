/**
 * RFC 7512 `pkcs11:` URIs: path attributes select the token and object, query attributes say
 * which module and PIN to use.
 */
import { ConfigurationError } from '../errors.js'
import { holdsPin } from '../lib/redact.js'

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

type Attributes = Record<string, (uri: Pkcs11Uri, value: Buffer) => void>

const TYPES = ['private', 'public', 'cert', 'secret-key', 'data'] as const

const PATH_ATTRIBUTES: Attributes = {
  token: (uri, v) => {
    uri.token = v.toString('utf8')
  },
  serial: (uri, v) => {
    uri.serial = v.toString('utf8')
  },
  manufacturer: (uri, v) => {
    uri.manufacturer = v.toString('utf8')
  },
  model: (uri, v) => {
    uri.model = v.toString('utf8')
  },
  'slot-id': (uri, v) => {
    // RFC 7512: a decimal number (CK_SLOT_ID).
    if (!/^\d+$/.test(v.toString('latin1'))) throw new ConfigurationError('pkcs11 URI: slot-id must be a decimal number')
    uri.slotId = BigInt(v.toString('latin1'))
  },
  object: (uri, v) => {
    uri.object = v.toString('utf8')
  },
  id: (uri, v) => {
    uri.id = v
  },
  type: (uri, v) => {
    const type = v.toString('utf8')
    if (!(TYPES as readonly string[]).includes(type)) throw new ConfigurationError(`pkcs11 URI: type must be one of ${TYPES.join(', ')}`)
    uri.type = type as Pkcs11Uri['type']
  },
}

const QUERY_ATTRIBUTES: Attributes = {
  'module-path': (uri, v) => {
    uri.modulePath = v.toString('utf8')
  },
  'pin-value': (uri, v) => {
    uri.pinValue = v.toString('utf8')
  },
  'pin-source': (uri, v) => {
    uri.pinSource = v.toString('utf8').replace(/^file:(\/\/)?/, '')
  },
  'x-library-parameters': (uri, v) => {
    uri.libraryParameters = v.toString('utf8')
  },
}

/**
 * Parses a `pkcs11:` URI as RFC 7512 says: the path (`;`-separated) ends at the first `?`, and the
 * query (`&`-separated) may hold further `?`; values are percent-decoded; an attribute given twice
 * is refused. Unknown attributes are ignored, as the RFC asks. Errors name the attribute and never
 * show what follows a PIN.
 *
 * @example
 * parsePkcs11Uri('pkcs11:token=demo;id=%01;type=private?pin-value=1234')
 * // { token: 'demo', id: <Buffer 01>, type: 'private', pinValue: '1234' }
 */
export function parsePkcs11Uri(text: string): Pkcs11Uri {
  if (!isPkcs11Uri(text)) throw new ConfigurationError('a PKCS#11 URI starts with "pkcs11:"')
  const body = text.slice('pkcs11:'.length)
  const question = body.indexOf('?')
  const uri: Pkcs11Uri = {}
  // Nothing at or after a PIN attribute is ever quoted: a mistyped separator puts the PIN's pieces there.
  const quotable = (end: number) => !holdsPin(body.slice(0, end))
  apply(uri, question < 0 ? body : body.slice(0, question), 0, ';', PATH_ATTRIBUTES, quotable)
  if (question >= 0) apply(uri, body.slice(question + 1), question + 1, '&', QUERY_ATTRIBUTES, quotable)
  return uri
}

/** True when `text` looks like a PKCS#11 URI. */
export function isPkcs11Uri(text: unknown): text is string {
  return typeof text === 'string' && /^pkcs11:/i.test(text)
}

/** Applies the `separator`-separated pairs of `part`, which begins at `offset` of the URI's body. */
function apply(uri: Pkcs11Uri, part: string, offset: number, separator: string, known: Attributes, quotable: (end: number) => boolean): void {
  const seen = new Set<string>()
  let end = offset
  for (const pair of part.split(separator)) {
    end += pair.length + separator.length
    if (!pair) continue
    const eq = pair.indexOf('=')
    if (eq < 1) throw new ConfigurationError(`pkcs11 URI: expected "name=value"${quotable(end) ? `, got "${pair}"` : ' after the PIN attribute'}`)
    const name = pair.slice(0, eq).toLowerCase()
    // A PIN attribute's own name would make the redaction hide the rest of the message.
    const shownName = holdsPin(name) ? 'the PIN attribute' : Object.hasOwn(known, name) || quotable(end) ? `"${name}"` : 'an attribute'
    if (seen.has(name)) throw new ConfigurationError(`pkcs11 URI: ${shownName} is given twice`)
    seen.add(name)
    if (Object.hasOwn(known, name)) known[name](uri, percentDecode(pair.slice(eq + 1), shownName))
  }
}

function percentDecode(value: string, name: string): Buffer {
  const bytes: number[] = []
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '%') {
      const hex = value.slice(i + 1, i + 3)
      if (!/^[0-9a-f]{2}$/i.test(hex)) throw new ConfigurationError(`pkcs11 URI: bad percent-encoding in ${name}`)
      bytes.push(parseInt(hex, 16))
      i += 2
    } else {
      bytes.push(...Buffer.from(value[i], 'utf8'))
    }
  }
  return Buffer.from(bytes)
}
