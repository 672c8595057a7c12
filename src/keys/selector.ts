/** Key selectors: `{ id: 'hex' }`, `{ label }`, or a `pkcs11:` URI with id / object. */
import { C, type Template } from '../pkcs11/binding.js'
import { isPkcs11Uri, parsePkcs11Uri } from '../config/pkcs11-uri.js'

export type KeySelector = { id: string } | { label: string } | { id: string, label: string } | string

/** The CKA_ID / CKA_LABEL part of a search template; TypeError for a selector that selects nothing. */
export function selectorTemplate(selector: KeySelector): { template: Template, label?: string, text: string } {
  if (isPkcs11Uri(selector)) {
    const uri = parsePkcs11Uri(selector)
    if (!uri.id && uri.object === undefined) throw new TypeError('the pkcs11 URI names no key (id= or object=)')
    return build(uri.id, uri.object, selector)
  }
  if (typeof selector === 'string') return build(undefined, selector, `label "${selector}"`)
  if (selector === null || typeof selector !== 'object') throw new TypeError('a key selector is { id }, { label } or a pkcs11: URI')
  const { id, label } = selector as { id?: unknown, label?: unknown }
  if (id !== undefined && (typeof id !== 'string' || !/^([0-9a-f]{2})+$/i.test(id))) throw new TypeError('key id must be an even-length hex string')
  if (label !== undefined && typeof label !== 'string') throw new TypeError('key label must be a string')
  if (id === undefined && label === undefined) throw new TypeError('a key selector is { id }, { label } or a pkcs11: URI')
  const text = [id !== undefined && `id ${id}`, label !== undefined && `label "${label}"`].filter(Boolean).join(' and ')
  return build(id === undefined ? undefined : Buffer.from(id, 'hex'), label as string | undefined, text)
}

function build(id: Buffer | undefined, label: string | undefined, text: string) {
  const template: Template = []
  if (id) template.push({ type: C.CKA_ID, value: id })
  if (label !== undefined) template.push({ type: C.CKA_LABEL, value: label })
  return { template, label, text }
}
