#!/usr/bin/env node
/** The `pkcs11-jwt` executable: `main` on this process's arguments, streams and environment. */
import { main } from './main.js'
import { EXIT_OK } from './errors.js'
import { processIo } from './io.js'

// A reader that stops reading (`pkcs11-jwt sign --help | head -1`) ends the command quietly, as
// it ends every Unix tool; nothing more can be said on that stdout anyway.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error
    process.exit(EXIT_OK)
  })
}

process.exitCode = await main(process.argv.slice(2), processIo())
