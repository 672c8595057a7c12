/** Key selectors: `{ id: 'hex' }`, `{ label }`, or a `pkcs11:` URI with id / object. */
import { KeyNotFoundError } from '../errors.js'
import { C, type Template } from '../pkcs11/binding.js'
import type { SlotDescription } from '../pkcs11/slots.js'
import { isPkcs11Uri, parsePkcs11Uri, type Pkcs11Uri } from '../config/pkcs11-uri.js'

export type KeySelector = { id: string } | { label: string } | { id: string; label: string } | string

/** What a selector asks for: the CKA_ID / CKA_LABEL template, the key classes it may be, and how to name it in errors. */
export interface SelectedKey {
  template: Template
  label?: string
  /** CKO_PRIVATE_KEY and/or CKO_SECRET_KEY (a URI's type= narrows them). */
  classes: number[]
  text: string
}

const KEY_CLASSES = [C.CKO_PRIVATE_KEY, C.CKO_SECRET_KEY]
const URI_CLASSES: Record<NonNullable<Pkcs11Uri['type']>, number[]> = {
  private: [C.CKO_PRIVATE_KEY],
  'secret-key': [C.CKO_SECRET_KEY],
  public: [],
  cert: [],
  data: [],
}

/** The token attributes a URI may name, as SlotDescription calls them. */
const TOKEN_ATTRIBUTES = ['token', 'serial', 'manufacturer', 'model'] as const

/**
 * The search for `selector` on the token in `slot`: TypeError for a selector that selects nothing,
 * KeyNotFoundError for a URI that names another token (token=, serial=, ...) or an object that is
 * not a private or secret key (type=public, cert, data).
 */
export function selectorTemplate(selector: KeySelector, slot: SlotDescription): SelectedKey {
  if (isPkcs11Uri(selector)) {
    const uri = parsePkcs11Uri(selector)
    if (!uri.id && uri.object === undefined) throw new TypeError('the pkcs11 URI names no key (id= or object=)')
    const token = slot.token!
    for (const attribute of TOKEN_ATTRIBUTES) {
      const named = uri[attribute]
      const actual = attribute === 'token' ? token.label : token[attribute]
      if (named !== undefined && named !== actual) throw new KeyNotFoundError(`${selector} names ${attribute} "${named}", not this token's ("${actual}")`)
    }
    if (uri.slotId !== undefined && uri.slotId !== slot.slotId) throw new KeyNotFoundError(`${selector} names slot-id ${uri.slotId}, not this token's (${slot.slotId})`)
    const classes = uri.type ? URI_CLASSES[uri.type] : KEY_CLASSES
    if (classes.length === 0) throw new KeyNotFoundError(`${selector} names a ${uri.type} object, not a private or secret key`)
    return build(uri.id, uri.object, classes, selector)
  }
  if (typeof selector === 'string') return build(undefined, selector, KEY_CLASSES, `label "${selector}"`)
  if (selector === null || typeof selector !== 'object') throw new TypeError('a key selector is { id }, { label } or a pkcs11: URI')
  const { id, label } = selector as { id?: unknown; label?: unknown }
  if (id !== undefined && !isHexId(id)) throw new TypeError('key id must be an even-length hex string')
  if (label !== undefined && typeof label !== 'string') throw new TypeError('key label must be a string')
  if (id === undefined && label === undefined) throw new TypeError('a key selector is { id }, { label } or a pkcs11: URI')
  const text = [id !== undefined && `id ${id}`, label !== undefined && `label "${label}"`].filter(Boolean).join(' and ')
  return build(id === undefined ? undefined : Buffer.from(id, 'hex'), label as string | undefined, KEY_CLASSES, text)
}

/** True for a CKA_ID written as hex: an even number of hex digits, nothing else. */
export function isHexId(id: unknown): id is string {
  return typeof id === 'string' && /^([0-9a-f]{2})+$/i.test(id)
}

function build(id: Buffer | undefined, label: string | undefined, classes: number[], text: string): SelectedKey {
  const template: Template = []
  if (id) template.push({ type: C.CKA_ID, value: id })
  if (label !== undefined) template.push({ type: C.CKA_LABEL, value: label })
  return { template, label, classes, text }
}
