// Marks each line that the TypeScript compiler rejects in the tests converted from JavaScript with
// a `// @ts-expect-error` naming the error, so the suite type-checks from the first day: every line
// not marked is checked, and a mark whose error is typed away fails the check (TS2578) until it
// is deleted. Used by scripts/convert-tests.sh; safe to run again (it only adds marks for new errors
// and removes marks that became unused).
//
//   node scripts/mark-type-errors.js test/tsconfig.integration.json
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { resolve } from 'node:path'

const project = process.argv[2]
const tsc = resolve('node_modules/typescript/bin/tsc')

function typeErrors() {
  try {
    execFileSync(process.execPath, [tsc, '-p', project, '--pretty', 'false'], { encoding: 'utf8' })
    return []
  } catch (failure) {
    return [...failure.stdout.matchAll(/^(.+?)\((\d+),\d+\): error (TS\d+): (.*)$/gm)].map(([, file, line, code, message]) => ({ file, line: Number(line), code, message }))
  }
}

for (let round = 1; ; round++) {
  const errors = typeErrors()
  if (errors.length === 0) break
  if (round > 5)
    throw new Error(
      `still ${errors.length} type errors after 5 rounds:\n${errors
        .slice(0, 10)
        .map((e) => `${e.file}:${e.line} ${e.code} ${e.message}`)
        .join('\n')}`,
    )
  const byFile = new Map()
  for (const e of errors) byFile.set(e.file, [...(byFile.get(e.file) ?? []), e])
  for (const [file, fileErrors] of byFile) {
    const lines = readFileSync(file, 'utf8').split('\n')
    const firstByLine = new Map()
    for (const e of fileErrors) if (!firstByLine.has(e.line)) firstByLine.set(e.line, e)
    for (const line of [...firstByLine.keys()].sort((a, b) => b - a)) {
      const { code, message } = firstByLine.get(line)
      const index = line - 1
      if (code === 'TS2578') {
        lines.splice(index, 1)
        continue
      } // a mark whose error went away
      const indent = /^\s*/.exec(lines[index])[0]
      const summary = message.length > 110 ? `${message.slice(0, 107)}...` : message
      lines.splice(index, 0, `${indent}// @ts-expect-error ${code} (converted from JavaScript): ${summary}`)
    }
    writeFileSync(file, lines.join('\n'))
  }
  console.log(`mark-type-errors: round ${round}, ${errors.length} errors marked in ${byFile.size} files`)
}
