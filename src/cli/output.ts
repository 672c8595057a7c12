/** What the CLI prints on stdout: aligned tables and JSON. */
import type { Writable } from 'node:stream'

/** Writes `text` and a newline on `out`. */
export function printLine(out: Writable, text: string): void {
  out.write(`${text}\n`)
}

/** Pretty JSON (two spaces) on `out`; bigints are written as decimal strings. */
export function printJson(out: Writable, value: unknown): void {
  printLine(
    out,
    JSON.stringify(value, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2),
  )
}

/**
 * A table with a header row, columns padded to their widest cell.
 *
 * @example
 * formatTable(['ID', 'LABEL'], [['01', 'rsa']])  // 'ID  LABEL\n01  rsa'
 */
function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)))
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}

/** Prints a table on `out`. */
export function printTable(out: Writable, headers: string[], rows: string[][]): void {
  printLine(out, formatTable(headers, rows))
}
