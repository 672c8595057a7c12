/** `listSlots`: the slots of a PKCS#11 module and their tokens, with no login. */
import { resolveModule, type OpenOptions } from './config/options.js'
import { Pkcs11Module } from './pkcs11/module.js'
import { describeSlots } from './pkcs11/slots.js'

/** The module to ask: the module options of `Pkcs11Crypto.open` (no token or PIN is needed). */
export type ListSlotsOptions = Pick<OpenOptions, 'library' | 'config' | 'uri' | 'env' | 'libraryParameters'>

/** One slot, as `pkcs11-tool --list-slots` shows it. */
export interface SlotInfo {
  /** Position in the slot list (Java SunPKCS11's slotListIndex). */
  slotIndex: number
  /** The CK_SLOT_ID; not stable across restarts on every module: select tokens by label or serial. */
  slotId: bigint
  description: string
  /** The token in the slot, if one is present. */
  token?: { label: string; serial: string; manufacturer: string; model: string }
}

/**
 * Lists the slots of a module and the tokens in them.
 *
 * @example
 * for (const slot of await listSlots({ library: '/usr/lib/softhsm/libsofthsm2.so' })) console.log(slot.slotIndex, slot.token?.label)
 */
export async function listSlots(options: ListSlotsOptions = {}): Promise<SlotInfo[]> {
  const { library, libraryParameters } = resolveModule({
    library: options.library,
    config: options.config,
    uri: options.uri,
    libraryParameters: options.libraryParameters,
    env: options.env,
  })
  const user = () => {} // nothing to redo when another user initializes the module again
  const module = await Pkcs11Module.acquire(library, user, libraryParameters)
  try {
    return describeSlots(module.native).map(({ slotIndex, slotId, description, token }) => ({
      slotIndex,
      slotId,
      description,
      ...(token && { token: { label: token.label, serial: token.serial, manufacturer: token.manufacturer, model: token.model } }),
    }))
  } finally {
    await module.release(user)
  }
}
