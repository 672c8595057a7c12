/**
 * @peculiar/x509, loaded when certificates are first used: it needs the reflect-metadata polyfill,
 * which changes the global `Reflect` of the whole application, and it is most of what importing
 * this library would otherwise cost. Until then nothing of it is loaded.
 */
import type * as X509 from '@peculiar/x509'

export type { Pkcs10CertificateRequest, X509Certificate } from '@peculiar/x509'

let loading: Promise<typeof X509> | undefined
let loaded: typeof X509 | undefined

/**
 * The @peculiar/x509 module, imported on the first call (after its polyfill). Every entry point
 * that handles certificates awaits it first; the code below it then uses `x509()`.
 *
 * @example
 * const { X509Certificate } = await loadX509()
 */
export function loadX509(): Promise<typeof X509> {
  loading ??= import('reflect-metadata').then(() => import('@peculiar/x509')).then((module) => (loaded = module))
  return loading
}

/** The module `loadX509()` loaded; a programming error before that. */
export function x509(): typeof X509 {
  if (!loaded) throw new Error('@peculiar/x509 used before loadX509()')
  return loaded
}
