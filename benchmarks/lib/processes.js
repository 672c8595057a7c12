// Processes that sign at the same time: each is forked and set up in turn, then all start together.
// In turn, because SoftHSM processes that open one token store at the same instant fail now and
// then (C_GetTokenInfo: CKR_GENERAL_ERROR).
import { fork } from 'node:child_process'
import { basename } from 'node:path'

/** The child's next message; rejects if it exits first. */
function nextMessage(child) {
  return new Promise((resolve, reject) => {
    const exited = (code) => reject(new Error(`${basename(child.spawnargs[1])} exited with ${code}`))
    child.once('exit', exited)
    child.once('message', (message) => {
      child.off('exit', exited)
      resolve(message)
    })
  })
}

/**
 * Forks `file` once per element of `jobs` (with `--child JOB` as arguments), each after the one
 * before has said it is ready; then tells all to go and resolves with their results, in order.
 * The child side is `childOf`.
 */
export async function runTogether(file, jobs) {
  const children = []
  for (const job of jobs) {
    const child = fork(file, ['--child', JSON.stringify(job)])
    children.push(child)
    await nextMessage(child)
  }
  const results = children.map(nextMessage)
  for (const child of children) child.send('go')
  return Promise.all(results)
}

/**
 * The child's side of runTogether, when this process was started as one (undefined otherwise):
 * runs `setup(job)`, says it is ready, and at the word runs the function that setup returned and
 * sends back its result.
 */
export function childOf(setup) {
  if (process.argv[2] !== '--child') return undefined
  return (async () => {
    const run = await setup(JSON.parse(process.argv[3]))
    process.send('ready')
    await new Promise((resolve) => process.once('message', resolve))
    const result = await run()
    process.send(result, () => process.exit(0))
  })()
}
