/**
 * What a run of `pkcs11-jwt` reads and writes: `main(args, io)` takes it, so that the CLI runs in
 * a test's own process as it runs in a terminal.
 */
import type { Readable, Writable } from 'node:stream'

export interface CliIo {
  stdout: Writable
  stderr: Writable & { isTTY?: boolean }
  /** Read to its end for claims and tokens, unless it is a terminal. */
  stdin: Readable & { isTTY?: boolean }
  /** Where PKCS11_MODULE, PKCS11_TOKEN, PKCS11_PIN, PKCS11_PIN_FILE and the data folder come from. */
  env: NodeJS.ProcessEnv
}

/** The process's own streams and environment. */
export function processIo(): CliIo {
  return { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env }
}
