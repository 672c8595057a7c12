/** `pkcs11-jwt slots`: the module's slots and their tokens, like `pkcs11-tool --list-slots`. */
import type { Command } from 'commander'
import { listSlots } from '../../index.js'
import { printJson, printTable } from '../output.js'
import { addTokenOptions, openOptions, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface SlotsFlags extends TokenFlags {
  json?: boolean
}

export function register(program: Command, io: CliIo): void {
  addTokenOptions(program.command('slots'))
    .description('list the slots of the PKCS#11 module and their tokens')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ pkcs11-jwt slots --module /usr/lib/softhsm/libsofthsm2.so\n')
    .action(async (flags: SlotsFlags) => {
      const slots = (await listSlots(openOptions(flags, io))).map((s) => ({ ...s, slotId: s.slotId.toString(), token: s.token ?? null }))
      if (flags.json) return printJson(io.stdout, slots)
      printTable(
        io.stdout,
        ['INDEX', 'SLOT ID', 'LABEL', 'SERIAL', 'MANUFACTURER', 'MODEL'],
        slots.map((s) => [
          String(s.slotIndex),
          s.slotId,
          s.token?.label ?? `(no token: ${s.description})`,
          s.token?.serial ?? '',
          s.token?.manufacturer ?? '',
          s.token?.model ?? '',
        ]),
      )
    })
}
