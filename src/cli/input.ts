/** Reading JSON and tokens from options, files and stdin. */
import { readFileSync } from 'node:fs'
import type { CliIo } from './io.js'
import { UsageError } from './errors.js'

/** All of stdin as text; empty when stdin is a terminal. */
export async function readStdin(stdin: CliIo['stdin']): Promise<string> {
  if (stdin.isTTY) return ''
  const chunks: Buffer[] = []
  for await (const chunk of stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer))
  return Buffer.concat(chunks).toString('utf8')
}

/** The text of `file` ('-' is stdin). */
export async function readText(file: string, what: string, stdin: CliIo['stdin']): Promise<string> {
  if (file === '-') return readStdin(stdin)
  try {
    return readFileSync(file, 'utf8')
  } catch (cause) {
    throw new UsageError(`cannot read ${what} ${file}: ${(cause as NodeJS.ErrnoException).code ?? (cause as Error).message}`, { cause })
  }
}

/** Parses `text` as a JSON object. */
export function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    throw new UsageError(`${what} is not valid JSON: ${(cause as Error).message}`, { cause })
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UsageError(`${what} must be a JSON object`)
  return value as Record<string, unknown>
}
