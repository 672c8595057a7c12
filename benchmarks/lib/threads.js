// Threads of one process that sign at the same time: as processes.js does with processes. The
// process's main thread initializes the module and logs in first, as a library's main thread does
// (threads that initialize at the same instant race, and the last session's close logs out).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'

/** The thread's next message; rejects if it fails or exits first. */
function nextMessage(worker) {
  return new Promise((resolve, reject) => {
    const exited = (code) => reject(new Error(`a signing thread exited with ${code}`))
    worker.once('error', reject)
    worker.once('exit', exited)
    worker.once('message', (message) => {
      worker.off('error', reject)
      worker.off('exit', exited)
      resolve(message)
    })
  })
}

/**
 * Starts `file` in a worker thread per element of `jobs` (as its workerData), each after the one
 * before has said it is ready; then tells all to go and resolves with their results, in order.
 * The thread's side is `threadOf`.
 */
export async function runThreads(file, jobs) {
  const workers = []
  for (const job of jobs) {
    const worker = new Worker(file, { workerData: job })
    workers.push(worker)
    await nextMessage(worker)
  }
  const results = workers.map(nextMessage)
  for (const worker of workers) worker.postMessage('go')
  const values = await Promise.all(results)
  await Promise.all(workers.map((worker) => worker.terminate()))
  return values
}

/**
 * The thread's side of runThreads, when this code runs in a worker thread (undefined on the main
 * thread): runs `setup(job)`, says it is ready, and at the word runs what setup returned and sends
 * back its result.
 */
export function threadOf(setup) {
  if (isMainThread) return undefined
  return (async () => {
    const run = await setup(workerData)
    parentPort.postMessage('ready')
    await new Promise((resolve) => parentPort.once('message', resolve))
    parentPort.postMessage(await run())
  })()
}
