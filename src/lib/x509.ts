/** @peculiar/x509, which needs the Reflect metadata polyfill loaded first. */
import 'reflect-metadata'

export * as x509 from '@peculiar/x509'
export { X509Certificate } from '@peculiar/x509'
