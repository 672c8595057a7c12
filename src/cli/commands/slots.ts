/** `pkcs11-jwt slots`: the module's slots and their tokens, like `pkcs11-tool --list-slots`. */
import type { Command } from 'commander'
import { resolveOptions } from '../../config/options.js'
import { Pkcs11Module } from '../../pkcs11/module.js'
import { describeSlots } from '../../pkcs11/slots.js'
import { printJson, printTable } from '../output.js'
import { addTokenOptions, openOptions, type TokenFlags } from '../token-options.js'

interface SlotsFlags extends TokenFlags {
  json?: boolean
}

export function register(program: Command): void {
  addTokenOptions(program.command('slots'))
    .description('list the slots of the PKCS#11 module and their tokens')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ pkcs11-jwt slots --module /usr/lib/softhsm/libsofthsm2.so\n')
    .action(async (flags: SlotsFlags) => {
      const { library, libraryParameters } = resolveOptions({ ...openOptions(flags), pin: undefined, pinFile: undefined })
      const user = () => {}
      const module = await Pkcs11Module.acquire(library, user, libraryParameters)
      try {
        const slots = describeSlots(module.native).map((s) => ({
          slotIndex: s.slotIndex,
          slotId: s.slotId.toString(),
          description: s.description,
          token: s.token ? { label: s.token.label, serial: s.token.serial, manufacturer: s.token.manufacturer, model: s.token.model } : null,
        }))
        if (flags.json) return printJson(slots)
        printTable(['INDEX', 'SLOT ID', 'LABEL', 'SERIAL', 'MANUFACTURER', 'MODEL'], slots.map((s) => [
          String(s.slotIndex), s.slotId, s.token?.label ?? `(no token: ${s.description})`, s.token?.serial ?? '', s.token?.manufacturer ?? '', s.token?.model ?? '',
        ]))
      } finally {
        await module.release(user)
      }
    })
}
