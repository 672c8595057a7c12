/** `pkcs11-jwt keys`: the keys on the token. */
import type { Command } from 'commander'
import { printJson, printTable } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface KeysFlags extends TokenFlags {
  json?: boolean
}

export function register(program: Command, io: CliIo): void {
  addTokenOptions(program.command('keys'))
    .description('list the keys on the token: id, label, type, size or curve, certificate, usable algorithms')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ pkcs11-jwt keys --config hsm.cfg --pin-file pin.txt --json\n')
    .action(async (flags: KeysFlags) => {
      await withToken(flags, io, async (hsm) => {
        const keys = await hsm.keys.list()
        if (flags.json) return printJson(io.stdout, keys)
        printTable(
          io.stdout,
          ['ID', 'LABEL', 'TYPE', 'SIZE', 'CERT', 'ALGORITHMS'],
          keys.map((k) => [k.id, k.label, k.kty, k.curve ?? (k.bits !== undefined ? String(k.bits) : ''), k.certificate ? 'yes' : 'no', k.algorithms.join(',') || '-']),
        )
      })
    })
}
