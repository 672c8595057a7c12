// pkcs11-jwt in this test's own process, through main(args, io): stdout and stderr collected as
// text, stdin from a string (never a terminal), the environment given.
import { Readable, Writable } from 'node:stream'
import { main } from '../../dist/cli/main.js'

/** A Writable that keeps what is written, as text. */
function collector() {
  let text = ''
  const stream = new Writable({
    write(chunk, _encoding, done) {
      text += chunk.toString()
      done()
    },
  })
  return { stream, text: () => text }
}

/** Runs pkcs11-jwt with `args`; resolves to { status, stdout, stderr }. */
export async function runCli(args: string[], { env, input = '' }: { env: NodeJS.ProcessEnv; input?: string }) {
  const stdout = collector()
  const stderr = collector()
  const status = await main(args, { stdout: stdout.stream, stderr: stderr.stream, stdin: Readable.from(input ? [input] : []), env })
  return { status, stdout: stdout.text(), stderr: stderr.text() }
}
