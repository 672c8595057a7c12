/** `pkcs11-jwt algorithms`: the JOSE algorithms the token's mechanism list supports. */
import type { Command } from 'commander'
import { JOSE_ALGORITHMS } from '../../index.js'
import { printJson, printTable } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

interface AlgorithmsFlags extends TokenFlags {
  json?: boolean
}

export function register(program: Command, io: CliIo): void {
  addTokenOptions(program.command('algorithms'))
    .description("list the JOSE algorithms the token's mechanisms support")
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExample:\n  $ pkcs11-jwt algorithms --token demo --pin-file pin.txt\n')
    .action(async (flags: AlgorithmsFlags) => {
      await withToken(flags, io, async (hsm) => {
        const supported = hsm.algorithms().map((alg) => {
          const a = JOSE_ALGORITHMS[alg]
          return { alg, kty: a.kty, webcrypto: a.name, hash: a.hash ?? null, curve: a.namedCurve ?? (a.kty === 'OKP' ? 'Ed25519' : null) }
        })
        if (flags.json) return printJson(io.stdout, supported)
        printTable(
          io.stdout,
          ['ALG', 'KTY', 'WEBCRYPTO', 'HASH', 'CURVE'],
          supported.map((a) => [a.alg, a.kty, a.webcrypto, a.hash ?? '', a.curve ?? '']),
        )
      })
    })
}
