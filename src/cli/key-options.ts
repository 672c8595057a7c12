/** The key options of the commands that use one key (sign, verify, jwks, encrypt, decrypt, bench): `--key LABEL|pkcs11:URI` or `--key-id HEX`. */
import type { Command } from 'commander'
import { JOSE_ALGORITHMS, joseNameOf, type KeySelector, type Pkcs11Crypto, type TokenKey } from '../index.js'
import { FailureError, UsageError } from './errors.js'

export interface KeyFlags {
  key?: string
  keyId?: string
}

/** Adds --key and --key-id to `command`. */
export function addKeyOptions(command: Command): Command {
  return command.option('--key <label|uri>', 'key label, or a pkcs11: URI with object= / id=').option('--key-id <hex>', 'key CKA_ID in hex')
}

/** The key selector of the flags; undefined when none is given and `required` is false. */
export function keySelector(flags: KeyFlags, required: true): KeySelector
export function keySelector(flags: KeyFlags, required: boolean): KeySelector | undefined
export function keySelector(flags: KeyFlags, required: boolean): KeySelector | undefined {
  if (flags.key !== undefined && flags.keyId !== undefined) throw new UsageError('give --key or --key-id, not both')
  if (flags.keyId !== undefined) {
    const id = flags.keyId.replace(/^0x/i, '').replace(/:/g, '')
    if (!/^([0-9a-f]{2})+$/i.test(id)) throw new UsageError(`--key-id ${JSON.stringify(flags.keyId)} is not even-length hex`)
    return { id: id.toLowerCase() }
  }
  if (flags.key !== undefined) {
    if (flags.key === '') throw new UsageError('--key is empty')
    return flags.key
  }
  if (required) throw new UsageError('name a key with --key LABEL|pkcs11:URI or --key-id HEX')
  return undefined
}

/** How a selector reads in messages. */
export function describeSelector(selector: KeySelector): string {
  if (typeof selector === 'string') return selector.startsWith('pkcs11:') ? selector : `"${selector}"`
  return 'id' in selector ? `id ${selector.id}` : `"${selector.label}"`
}

/** The JOSE algorithms `key` serves on this token, as `keys.list()` says. */
export async function listedAlgorithms(hsm: Pkcs11Crypto, key: TokenKey): Promise<string[]> {
  return (await hsm.keys.list()).find((k) => k.id === key.id && k.label === key.label)?.algorithms ?? []
}

/**
 * The key for `alg`, or for the key's default JOSE algorithm (the first it can sign with on this
 * token) when `alg` is undefined; returns the key and the JOSE name.
 */
export async function keyForAlgorithm(hsm: Pkcs11Crypto, selector: KeySelector, alg: string | undefined): Promise<{ key: TokenKey; alg: string }> {
  if (alg !== undefined) return { key: await hsm.keys.get(selector, { algorithm: alg }), alg }
  const plain = await hsm.keys.get(selector)
  const chosen =
    (await listedAlgorithms(hsm, plain)).find((a) => JOSE_ALGORITHMS[a].use === undefined) ??
    joseNameOf(plain.privateKey.algorithm as { name: string; hash?: { name: string }; namedCurve?: string })
  if (!chosen) throw new FailureError(`key ${describeSelector(selector)} can sign with no JOSE algorithm on this token`)
  return { key: await hsm.keys.get(selector, { algorithm: chosen }), alg: chosen }
}

/** A UsageError unless `alg` is a JOSE algorithm name this library knows. */
export function checkAlgorithm(alg: string): void {
  if (!Object.hasOwn(JOSE_ALGORITHMS, alg)) throw new UsageError(`unknown algorithm ${JSON.stringify(alg)}; one of ${Object.keys(JOSE_ALGORITHMS).join(', ')}`)
}
