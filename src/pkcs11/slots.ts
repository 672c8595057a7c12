/**
 * Finding the slot whose token the caller means. Slot ids are not stable across restarts on many
 * modules (SoftHSM among them), so label and serial are the robust choices.
 */
import { TokenNotFoundError } from '../errors.js'
import { callSync, type Handle, type PKCS11 } from './binding.js'

/** Which token to use: exactly one of these. */
export type TokenSelector =
  | { label: string }
  | { serial: string }
  /** Index into the list of all slots, as Java SunPKCS11's `slotListIndex`. */
  | { slotIndex: number }
  | { slotId: number | bigint }

/** The module, from C_GetInfo: what it is decides the quirks the key templates allow for. */
export interface ModuleDescription {
  manufacturer: string
  description: string
  /** libraryVersion, "major.minor". */
  version: string
}

export interface SlotDescription {
  module: ModuleDescription
  slot: Handle
  slotId: bigint
  slotIndex: number
  description: string
  /** CKF_HW_SLOT: a hardware slot, not a software one implementing a soft token. */
  hardware: boolean
  token?: { label: string; serial: string; manufacturer: string; model: string; flags: number; maxSessionCount: number }
}

/** Reads a slot handle as the CK_SLOT_ID number it carries. */
export function slotIdOf(slot: Handle): bigint {
  return slot.length >= 8 ? slot.readBigUInt64LE(0) : BigInt(slot.readUInt32LE(0))
}

/**
 * A fixed-length PKCS#11 string without its padding: spaces as the standard says, and NULs as
 * some modules pad (tpm2-pkcs11's token model).
 */
export function tokenString(padded: string): string {
  return padded.replace(/^[\s\0]+|[\s\0]+$/g, '')
}

/** Every slot of the module, with its token when one is present. */
export function describeSlots(native: PKCS11): SlotDescription[] {
  const info = callSync('C_GetInfo', () => native.C_GetInfo())
  const module = {
    manufacturer: tokenString(info.manufacturerID),
    description: tokenString(info.libraryDescription),
    version: `${info.libraryVersion.major}.${info.libraryVersion.minor}`,
  }
  const slots = callSync('C_GetSlotList', () => native.C_GetSlotList(false))
  return slots.map((slot, slotIndex) => {
    const info = callSync('C_GetSlotInfo', () => native.C_GetSlotInfo(slot))
    const described: SlotDescription = {
      module,
      slot,
      slotId: slotIdOf(slot),
      slotIndex,
      description: tokenString(info.slotDescription),
      hardware: (info.flags & 4) /* CKF_HW_SLOT */ !== 0,
    }
    if (info.flags & 1 /* CKF_TOKEN_PRESENT */) {
      const token = callSync('C_GetTokenInfo', () => native.C_GetTokenInfo(slot))
      described.token = {
        label: tokenString(token.label),
        serial: tokenString(token.serialNumber),
        manufacturer: tokenString(token.manufacturerID),
        model: tokenString(token.model),
        flags: token.flags,
        maxSessionCount: token.maxSessionCount,
      }
    }
    return described
  })
}

/**
 * The slot selected by `selector`, or with no selector the only token present; a
 * TokenNotFoundError lists what is there instead.
 */
export function selectSlot(native: PKCS11, selector: TokenSelector | undefined): SlotDescription {
  const slots = describeSlots(native)
  if (!selector) {
    const withToken = slots.filter((s) => s.token)
    if (withToken.length === 1) return withToken[0]
    throw new TokenNotFoundError(`${withToken.length ? 'several tokens are' : 'no token is'} present; choose one by label, serial or slot index${present(slots)}`)
  }
  const match = slots.find((s) => {
    if ('label' in selector) return s.token?.label === selector.label
    if ('serial' in selector) return s.token?.serial === selector.serial
    if ('slotIndex' in selector) return s.slotIndex === selector.slotIndex
    return s.slotId === BigInt(selector.slotId)
  })
  if (!match?.token) {
    throw new TokenNotFoundError(`no token with ${describeSelector(selector)} is present${present(slots)}`)
  }
  return match
}

function present(slots: SlotDescription[]): string {
  const tokens = slots.filter((s) => s.token).map((s) => `"${s.token!.label}" (serial ${s.token!.serial}, slot index ${s.slotIndex})`)
  return `; tokens present: ${tokens.join(', ') || 'none'}`
}

function describeSelector(selector: TokenSelector): string {
  const [[name, value]] = Object.entries(selector)
  return `${name} ${JSON.stringify(typeof value === 'bigint' ? value.toString() : value)}`
}
