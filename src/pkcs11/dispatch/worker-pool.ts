/**
 * Sends signatures to signing workers: threads with a session each that make synchronous PKCS#11
 * calls. Requests queue in arrival order (a bounded queue) and leave in batches sized to the
 * device's speed, so a fast token (SoftHSM ECDSA: ~0.07 ms a signature) pays one message per dozens
 * of signatures, and a slow one (a network HSM: 100 ms) gets one request per batch and more
 * workers, up to the session limit, with no request stuck behind a long batch. A request that
 * outlives its deadline, or whose signal aborts, is answered at once and its late result dropped.
 */
import { Worker } from 'node:worker_threads'
import { ClosedError, QueueFullError, TimeoutError, TokenError } from '../../errors.js'
import { ckrName, type Handle } from '../binding.js'
import type { Dispatcher, RunOptions } from './dispatcher.js'
import type { FromWorker, Operation, Request, Result } from './protocol.js'

/** A batch should keep a worker busy about this long: long enough to amortize a message, short enough for fairness. */
const BATCH_MS = 2
const MAX_BATCH = 64
/** Below this service time a device is fast: more workers than cores would only compete for the CPU. */
const SLOW_MS = 5
/** Batches a worker may hold at once: one running, one waiting, so it never idles on the main thread. */
const PIPELINE = 2
/** How often deadlines are checked. */
const SWEEP_MS = 50

interface Pending extends RunOptions {
  request: Request
  resolve: (value: Uint8Array | boolean) => void
  reject: (error: Error) => void
  settled: boolean
}

interface SigningWorker {
  thread: Worker
  batches: Pending[][]
  sessions: number
}

export interface WorkerPoolOptions {
  library: string
  slot: Handle
  /** Workers started at the first request (default: the cores, within maxWorkers). */
  minWorkers: number
  /** The most workers (and so sessions) the pool may use; reached only for slow devices. */
  maxWorkers: number
  /** The most requests that may wait for a worker. */
  maxQueue: number
}

export class WorkerPool implements Dispatcher {
  readonly #library: string
  #slot: Uint8Array
  readonly #minWorkers: number
  readonly #maxWorkers: number
  readonly #maxQueue: number
  readonly #workers: SigningWorker[] = []
  readonly #queue: Pending[] = []
  #nextId = 0
  /** Moving average of one operation's time on the device, in ms. */
  #serviceMs = 1
  #closed = false
  #flushScheduled = false
  #sweeper?: NodeJS.Timeout

  private constructor(options: WorkerPoolOptions) {
    this.#library = options.library
    this.#slot = new Uint8Array(options.slot)
    this.#maxWorkers = Math.max(1, options.maxWorkers)
    this.#minWorkers = Math.max(1, Math.min(options.minWorkers, this.#maxWorkers))
    this.#maxQueue = options.maxQueue
  }

  /**
   * A pool with its first worker started, or undefined when the module cannot serve workers: its
   * loads on other threads are separate instances that do not share the main thread's login.
   */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool | undefined> {
    const pool = new WorkerPool(options)
    const worker = pool.#startWorker()
    const shared = await new Promise<boolean>((resolve, reject) => {
      worker.thread.once('message', (message: FromWorker) => resolve(message.type === 'ready' && message.shared))
      worker.thread.once('error', reject)
    })
    worker.thread.unref()
    if (shared) return pool
    await worker.thread.terminate()
    return undefined
  }

  /** Sessions the workers hold now. */
  get openSessions(): number {
    return this.#workers.reduce((sum, w) => sum + w.sessions, 0)
  }

  /** Runs one operation on a worker; resolves with the signature (or the verification result). */
  run(operation: Operation, options: RunOptions): Promise<Uint8Array | boolean> {
    if (this.#closed) return Promise.reject(new ClosedError())
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(new QueueFullError(this.#queue.length))
    if (options.signal?.aborted) return Promise.reject(options.signal.reason)
    return new Promise((resolve, reject) => {
      const request = { ...operation, key: own(operation.key), data: own(operation.data), id: this.#nextId++ } as Request
      this.#queue.push({ ...options, request, resolve, reject, settled: false })
      this.#sweeper ??= setInterval(() => this.#sweep(), SWEEP_MS).unref()
      // Requests made in the same tick leave together.
      if (!this.#flushScheduled) {
        this.#flushScheduled = true
        queueMicrotask(() => this.#flush())
      }
    })
  }

  /** The token came back in another slot: workers reopen their sessions there. */
  retarget(slot: Handle): void {
    this.#slot = new Uint8Array(slot)
    for (const worker of this.#workers) worker.thread.postMessage({ type: 'slot', slot: this.#slot })
  }

  /** Waits for the work under way, then stops the workers (closing their sessions). */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#sweeper)
    for (const pending of this.#queue.splice(0)) answer(pending, new ClosedError())
    await Promise.all(this.#workers.map(async (worker) => {
      worker.thread.ref() // an idle worker is unref'd; closing must still be waited for
      while (worker.batches.length > 0) await new Promise((resolve) => worker.thread.once('message', resolve))
      worker.thread.postMessage({ type: 'close' })
      await new Promise((resolve) => worker.thread.once('message', resolve))
      await worker.thread.terminate()
    }))
    this.#workers.length = 0
  }

  #flush(): void {
    this.#flushScheduled = false
    while (this.#queue.length > 0) {
      const worker = this.#freeWorker()
      if (!worker) return
      const size = Math.max(1, Math.min(MAX_BATCH, Math.floor(BATCH_MS / this.#serviceMs)))
      const batch = this.#queue.splice(0, size).filter((pending) => !pending.settled)
      if (batch.length === 0) continue
      worker.batches.push(batch)
      worker.thread.ref()
      worker.thread.postMessage({ type: 'batch', requests: batch.map((p) => p.request) })
    }
  }

  /** Answers the requests whose deadline passed or whose signal aborted; they leave the queue. */
  #sweep(): void {
    const now = performance.now()
    for (const pending of [...this.#queue, ...this.#workers.flatMap((w) => w.batches.flat())]) {
      if (pending.settled || (now < pending.deadline && !pending.signal?.aborted)) continue
      answer(pending, pending.signal?.aborted ? pending.signal.reason : new TimeoutError(pending.timeoutMs))
    }
    for (let i = this.#queue.length - 1; i >= 0; i--) if (this.#queue[i].settled) this.#queue.splice(i, 1)
    if (this.#queue.length === 0 && this.#workers.every((w) => w.batches.length === 0)) {
      clearInterval(this.#sweeper)
      this.#sweeper = undefined
    }
  }

  /** The least busy worker with room in its pipeline; a new one while below the minimum or the device is slow. */
  #freeWorker(): SigningWorker | undefined {
    const idle = this.#workers.find((w) => w.batches.length === 0)
    if (idle) return idle
    const slow = this.#serviceMs >= SLOW_MS
    if (this.#workers.length < this.#minWorkers || (slow && this.#workers.length < this.#maxWorkers)) return this.#startWorker()
    // A slow device gets one batch per worker at a time: a second would wait behind the first.
    return slow ? undefined : this.#workers.find((w) => w.batches.length < PIPELINE)
  }

  #startWorker(): SigningWorker {
    const thread = new Worker(new URL('./signing-worker.js', import.meta.url), { workerData: { library: this.#library, slot: this.#slot } })
    const worker: SigningWorker = { thread, batches: [], sessions: 0 }
    thread.on('message', (message: FromWorker) => {
      if (message.type === 'results') this.#settle(worker, message)
    })
    thread.on('error', (error) => this.#fail(worker, error))
    this.#workers.push(worker)
    return worker
  }

  #settle(worker: SigningWorker, message: Extract<FromWorker, { type: 'results' }>): void {
    const batch = worker.batches.shift() ?? []
    worker.sessions = message.sessions
    // An idle worker must not keep the process alive (an instance not closed must not hang the exit).
    if (worker.batches.length === 0 && !this.#closed) worker.thread.unref()
    const perOperation = message.busyMs / Math.max(1, message.results.length)
    this.#serviceMs = 0.8 * this.#serviceMs + 0.2 * perOperation
    message.results.forEach((result, i) => answer(batch[i], result))
    this.#flush()
  }

  /** A worker died (it could not load the module, say): its requests fail, the others go on. */
  #fail(worker: SigningWorker, error: Error): void {
    this.#workers.splice(this.#workers.indexOf(worker), 1)
    for (const pending of worker.batches.flat()) answer(pending, error)
    worker.batches.length = 0
    this.#flush()
  }
}

/** Settles a request once: with a result from a worker, or an error. */
function answer(pending: Pending, outcome: Result | Error): void {
  if (pending.settled) return
  pending.settled = true
  if (outcome instanceof Error) return pending.reject(outcome)
  if (outcome.ok) return pending.resolve(outcome.value)
  pending.reject(outcome.code === undefined ? new Error(`${outcome.fn} failed: ${outcome.message}`) : new TokenError(ckrName(outcome.code), outcome.code, outcome.fn))
}

/**
 * `bytes` in an ArrayBuffer of their own: structured cloning copies a view's whole buffer, and a
 * Buffer from Node's pool would bring its 8 KiB slab along with each request.
 */
function own(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice()
}
