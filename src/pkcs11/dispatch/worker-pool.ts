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
import type { Mechanism } from '../binding.js'
import type { Dispatcher, RunOptions } from './dispatcher.js'
import { LAYOUT, NOT_PKCS11, SIGN, STATUS, VERIFY, type Batch, type FromWorker, type Operation, type Results } from './protocol.js'

/** A batch should keep a worker busy about this long: long enough to amortize a message, short enough for fairness. */
const BATCH_MS = 2
const MAX_BATCH = 64
/** Below this service time a device is fast: more workers than cores would only compete for the CPU. */
const SLOW_MS = 5
/** Batches a worker may hold at once: one running, one waiting, so it never idles on the main thread. */
const PIPELINE = 2
/** How often deadlines are checked. */
const SWEEP_MS = 50

/** A request on its way: what to do, by when, and whom to answer. */
class Pending {
  settled = false

  constructor(
    readonly key: Uint8Array,
    readonly operation: Operation,
    readonly options: RunOptions,
    readonly resolve: (value: Uint8Array | boolean) => void,
    readonly reject: (error: Error) => void,
  ) {}

  /** Bytes it takes in a batch: the key handle, the input, and the signature to verify. */
  get size(): number {
    const { operation } = this
    return this.key.byteLength + operation.data.byteLength + (operation.op === 'verify' ? operation.signature.byteLength : 0)
  }
}

interface SigningWorker {
  thread: Worker
  batches: Pending[][]
  sessions: number
  /** How many of the pool's mechanisms it has been sent. */
  mechanisms: number
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
  /** Every mechanism sent to the workers, and its id (its index) by its JSON. */
  readonly #mechanisms: Mechanism[] = []
  readonly #mechanismIds = new Map<string, number>()
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

  /**
   * Runs one operation on a worker; resolves with the signature (or the verification result).
   * The caller must not change the bytes of `key` or `operation` until it settles.
   */
  run(key: Uint8Array, operation: Operation, options: RunOptions): Promise<Uint8Array | boolean> {
    if (this.#closed) return Promise.reject(new ClosedError())
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(new QueueFullError(this.#queue.length))
    if (options.signal?.aborted) return Promise.reject(options.signal.reason)
    return new Promise((resolve, reject) => {
      this.#queue.push(new Pending(key, operation, options, resolve, reject))
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
      // No bigger than the device's speed allows, and spread over the free pipeline places, so that
      // a worker has its next batch at hand when it finishes one instead of waiting for the main thread.
      const share = Math.ceil(this.#queue.length / this.#freePlaces())
      const size = Math.max(1, Math.min(MAX_BATCH, Math.floor(BATCH_MS / this.#serviceMs), share))
      const batch = this.#queue.splice(0, size).filter((pending) => !pending.settled)
      if (batch.length === 0) continue
      worker.batches.push(batch)
      worker.thread.ref()
      const message = this.#encode(worker, batch)
      worker.thread.postMessage({ type: 'batch', ...message }, [message.layout.buffer, message.bytes.buffer])
    }
  }

  /** Answers the requests whose deadline passed or whose signal aborted; they leave the queue. */
  #sweep(): void {
    const now = performance.now()
    for (const pending of [...this.#queue, ...this.#workers.flatMap((w) => w.batches.flat())]) {
      const { deadline, signal, timeoutMs } = pending.options
      if (pending.settled || (now < deadline && !signal?.aborted)) continue
      answer(pending, signal?.aborted ? signal.reason : new TimeoutError(timeoutMs))
    }
    for (let i = this.#queue.length - 1; i >= 0; i--) if (this.#queue[i].settled) this.#queue.splice(i, 1)
    if (this.#queue.length === 0 && this.#workers.every((w) => w.batches.length === 0)) {
      clearInterval(this.#sweeper)
      this.#sweeper = undefined
    }
  }

  /** Batches the workers (running, and yet to start at the next request) can take now. */
  #freePlaces(): number {
    const waiting = Math.max(0, this.#minWorkers - this.#workers.length)
    return Math.max(1, this.#workers.reduce((sum, w) => sum + Math.max(0, PIPELINE - w.batches.length), waiting * PIPELINE))
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
    const worker: SigningWorker = { thread, batches: [], sessions: 0, mechanisms: 0 }
    thread.on('message', (message: FromWorker) => {
      if (message.type === 'results') this.#settle(worker, message)
    })
    thread.on('error', (error) => this.#fail(worker, error))
    this.#workers.push(worker)
    return worker
  }

  /** A batch in the protocol's form: its layout, its bytes, and the mechanisms the worker has not seen. */
  #encode(worker: SigningWorker, batch: Pending[]): Batch {
    const layout = new Uint32Array(batch.length * LAYOUT.size)
    const bytes = new Uint8Array(batch.reduce((sum, pending) => sum + pending.size, 0))
    let keyPins: Batch['keyPins']
    let offset = 0
    batch.forEach(({ key, operation }, i) => {
      const at = i * LAYOUT.size
      layout[at + LAYOUT.op] = operation.op === 'sign' ? SIGN : VERIFY
      layout[at + LAYOUT.mechanism] = this.#mechanismId(operation.mechanism)
      layout[at + LAYOUT.keyLength] = key.byteLength
      layout[at + LAYOUT.dataLength] = operation.data.byteLength
      bytes.set(key, offset)
      bytes.set(operation.data, offset + key.byteLength)
      offset += key.byteLength + operation.data.byteLength
      if (operation.op === 'sign') {
        layout[at + LAYOUT.last] = operation.outputLength
        if (operation.keyPin !== undefined) (keyPins ??= [])[i] = operation.keyPin
      } else {
        layout[at + LAYOUT.last] = operation.signature.byteLength
        bytes.set(operation.signature, offset)
        offset += operation.signature.byteLength
      }
    })
    const newMechanisms = this.#mechanisms.slice(worker.mechanisms)
    worker.mechanisms = this.#mechanisms.length
    return { layout, bytes, newMechanisms, keyPins }
  }

  /** The id of `mechanism` (same type and parameters: same id), registered at first use. */
  #mechanismId(mechanism: Mechanism): number {
    const shape = mechanism.parameter === undefined ? String(mechanism.mechanism) : JSON.stringify(mechanism)
    let id = this.#mechanismIds.get(shape)
    if (id === undefined) {
      id = this.#mechanisms.push(mechanism) - 1
      this.#mechanismIds.set(shape, id)
    }
    return id
  }

  #settle(worker: SigningWorker, results: Results): void {
    const batch = worker.batches.shift() ?? []
    worker.sessions = results.sessions
    // An idle worker must not keep the process alive (an instance not closed must not hang the exit).
    if (worker.batches.length === 0 && !this.#closed) worker.thread.unref()
    this.#serviceMs = 0.8 * this.#serviceMs + 0.2 * results.busyMs / Math.max(1, batch.length)
    const failures = new Map(results.failures.map((failure) => [failure.index, failure]))
    let outputOffset = 0
    batch.forEach((pending, i) => {
      const code = results.status[i * STATUS.size + STATUS.code]
      const value = results.status[i * STATUS.size + STATUS.value]
      const { operation } = pending
      if (code !== 0) {
        const { fn, message } = failures.get(i)!
        answer(pending, code === NOT_PKCS11 ? new Error(`${fn} failed: ${message}`) : new TokenError(ckrName(code), code, fn))
      } else {
        answer(pending, operation.op === 'sign' ? results.output.slice(outputOffset, outputOffset + value) : value === 1)
      }
      if (operation.op === 'sign') outputOffset += operation.outputLength
    })
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

/** Settles a request once: with its result, or an error. */
function answer(pending: Pending, outcome: Uint8Array | boolean | Error): void {
  if (pending.settled) return
  pending.settled = true
  if (outcome instanceof Error) pending.reject(outcome)
  else pending.resolve(outcome)
}
