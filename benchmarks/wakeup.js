// node benchmarks/wakeup.js: what it costs to hand a batch to a thread and hear back, the two ways
// a signing worker could be reached. A postMessage round trip (a small batch and its results, as
// transferred typed arrays) against an Atomics round trip (Atomics.notify to the worker, which
// sleeps in Atomics.wait; Atomics.waitAsync on the main thread). Prints round trips a second and
// the process's CPU time per round trip; the signing workers use the second way.
import { Worker } from 'node:worker_threads'

const ROUND_TRIPS = 20_000

async function measure(name, run) {
  const cpu = process.cpuUsage()
  const start = performance.now()
  await run()
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  console.log(`${name.padEnd(30)} ${Math.round(ROUND_TRIPS / seconds).toLocaleString('en-US').padStart(7)} round trips/s, ` +
    `${((used.user + used.system) / ROUND_TRIPS).toFixed(1)} µs of CPU each`)
}

await measure('postMessage (transferred)', async () => {
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads')
    parentPort.on('message', () => {
      const status = new Int32Array(8), output = new Uint8Array(256)
      parentPort.postMessage({ status, output, busyMs: 0 }, [status.buffer, output.buffer])
    })`, { eval: true })
  let done = 0
  await new Promise((resolve) => {
    const send = () => {
      const layout = new Uint32Array(20), bytes = new Uint8Array(160)
      worker.postMessage({ layout, bytes }, [layout.buffer, bytes.buffer])
    }
    worker.on('message', () => (++done === ROUND_TRIPS ? resolve() : send()))
    send()
  })
  await worker.terminate()
})

await measure('Atomics.notify / waitAsync', async () => {
  const control = new Int32Array(new SharedArrayBuffer(8))
  const worker = new Worker(`
    const { workerData } = require('node:worker_threads')
    const control = new Int32Array(workerData)
    for (let seen = 0; ;) {
      Atomics.wait(control, 0, seen)
      seen = Atomics.load(control, 0)
      if (seen < 0) break
      Atomics.store(control, 1, seen)
      Atomics.notify(control, 1)
    }`, { eval: true, workerData: control.buffer })
  for (let i = 1; i <= ROUND_TRIPS; i++) {
    const answered = Atomics.waitAsync(control, 1, i - 1)
    Atomics.store(control, 0, i)
    Atomics.notify(control, 0)
    if (answered.async) await answered.value
  }
  Atomics.store(control, 0, -1)
  Atomics.notify(control, 0)
  await worker.terminate()
})
