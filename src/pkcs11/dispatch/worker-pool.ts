/**
 * Sends signatures to signing workers: threads with a session each that make synchronous PKCS#11
 * calls. Requests queue in arrival order (a bounded queue) and leave in batches sized to the
 * device's speed, so a fast token (SoftHSM ECDSA: ~0.07 ms a signature) pays one wake-up per
 * several signatures, and a slow one (a network HSM: 100 ms) gets one request per batch and more
 * workers, up to the session limit, with no request stuck behind a long batch. A request that
 * outlives its deadline, or whose signal aborts, is answered at once and its late result dropped.
 * A fast signature with nothing else under way (or any, with inPlace 'always') is made in place on
 * the main thread instead (in-place.ts). By default, on a software token (whose signing sessions
 * sign with copies of their keys), the main thread also counts as one of the signers: one worker
 * fewer than cores, and it keeps a share of the queue's ECDSA and EdDSA signatures, which it signs
 * in place, one a turn of its event loop; the last worker starts when what waits cannot be signed
 * that way, or when the main thread is busy with other work.
 */
import { ClosedError, QueueFullError, TimeoutError } from '../../errors.js'
import type { Handle, PKCS11 } from '../binding.js'
import type { ModuleActivity } from '../module-activity.js'
import type { Dispatcher, RunOptions } from './dispatcher.js'
import { MechanismIds } from './mechanism-ids.js'
import { Pending } from './pending.js'
import { entryOf } from './call-parameter.js'
import { OP_CODES, OPS, type Operation } from './protocol.js'
import { ServiceTimes } from './service-times.js'
import { MAX_BATCH } from './batch-memory.js'
import { PIPELINE, WorkerLink } from './worker-link.js'
import { IN_PLACE_MAX_INPUT, InPlaceRunner } from './in-place.js'
import { mainThreadLoad } from './main-thread-load.js'

/**
 * A batch may keep a worker busy about this long: long enough that the wake-ups it costs (the
 * worker's, and the main thread's for the answers, tens of µs of CPU each on a busy machine) are
 * small beside it, short enough that a request does not wait long behind it. Measured with ab.js
 * (RSA-2048 through jose, concurrency 16, 9 rounds): 6 ms instead of 2 lets four RSA signatures
 * share a wake-up, for +6% (RS256) and +15% (PS256), main-thread ELU 0.20 -> 0.15.
 */
const BATCH_MS = 6
/** Below this service time a device is fast: more workers than cores would only compete for the CPU. */
const SLOW_MS = 5
/**
 * Calls in place back to back (each answer's continuation makes the next call, all in microtasks)
 * may hold the event loop this long; then the next waits for the loop to turn (timers, I/O), and
 * the count starts again. 1 ms rather than 4: the event loop's p99 delay in a process per core
 * went from 9 ms to 4.3, at the same throughput.
 */
const IN_PLACE_TURN_MS = 1
/**
 * Kinds the device does in at most this long may run in place: an RSA-2048 signature on a software
 * token or a local HSM (0.6-2 ms), not a smart card's or a network HSM's.
 */
const IN_PLACE_MS = 2
/**
 * Kinds whose fastest batch took at most this long a request may be signed beside the workers
 * ('auto'): an ECDSA or EdDSA signature on a software token (0.05-0.2 ms), not an RSA one (0.6
 * ms), whose wait would hold the workers' answers: at two calls in flight RS256 made 16% fewer
 * JWTs signed beside one worker than on two workers.
 */
const SPARE_MS = 0.5
/** How often deadlines are checked. */
const SWEEP_MS = 50

export interface WorkerPoolOptions {
  library: string
  slot: Handle
  /** The module's activity: batches count as calls inside it, and none is posted while it is held. */
  activity: ModuleActivity
  /**
   * The workers a device that is not slow gets (the cores, within maxWorkers): one fewer while the
   * main thread signs beside them (inPlace 'auto' with keyCopies), 1 with inPlace 'always'.
   */
  cores: number
  /** The most workers (and so sessions) the pool may use; reached only for slow devices. */
  maxWorkers: number
  /** The most requests that may wait for a worker. */
  maxQueue: number
  /** The main thread's load of the module, for requests run in place. */
  native: PKCS11
  /** Which requests of a fast kind run in place, on the main thread (see in-place.ts). */
  inPlace: InPlaceMode
  /** The module's words of the copies of keys (session-copies.ts): given, signatures use session copies of their keys. */
  keyCopies?: Int32Array
}

/**
 * 'auto': as 'alone', and on a software token, while the main thread has time to spare, a share of
 * the fast signatures beside the workers; 'alone': a request with nothing else under way (one call in flight);
 * 'always': every one (a process per core, whose other cores are other processes'); 'never'.
 */
export const IN_PLACE_MODES = ['auto', 'alone', 'always', 'never'] as const
export type InPlaceMode = (typeof IN_PLACE_MODES)[number]

export class WorkerPool implements Dispatcher {
  readonly #library: string
  readonly #activity: ModuleActivity
  #slot: Uint8Array
  /** Workers started as requests come, before any is known to be slow. */
  readonly #minWorkers: number
  /** Workers a device that is not slow may get: the cores. */
  readonly #cores: number
  /**
   * Whether the main thread signs beside the workers ('auto'): with signing sessions on copies of
   * their keys (without, a signature in place would wait on the module's lock for the workers'
   * calls, on the event loop), and on 2 cores or more.
   */
  readonly #shares: boolean
  readonly #maxWorkers: number
  readonly #maxQueue: number
  readonly #inPlaceMode: InPlaceMode
  readonly #native: PKCS11
  readonly #keyCopies: Int32Array | undefined
  /** Made at the first request run in place; its session counts among the workers'. */
  #inPlace: InPlaceRunner | undefined
  /** When the calls in place since the event loop last turned began. */
  #turnStart: number | undefined
  /** A flush waits for the event loop's next turn, past IN_PLACE_TURN_MS in place. */
  #resumeScheduled = false
  /** A signature of the queue's head is to be made in place at the event loop's next turn ('auto'). */
  #spareScheduled = false
  readonly #workers: WorkerLink[] = []
  readonly #queue: Pending[] = []
  readonly #mechanisms = new MechanismIds()
  /**
   * Each kind of request's time on the device. Until a kind has been timed, a request of it goes
   * alone in its batch: a guess that the device is fast would put several requests of a slow one
   * behind each other, past their deadlines.
   */
  readonly #times = new ServiceTimes()
  #closed = false
  /** Resolves close() once the queue made before it is answered. */
  #drained: (() => void) | undefined
  readonly #stopListening: () => void
  #flushScheduled = false
  #sweeper?: NodeJS.Timeout

  private constructor(options: WorkerPoolOptions) {
    this.#library = options.library
    this.#activity = options.activity
    this.#stopListening = options.activity.onReopen(() => this.#flush())
    this.#slot = new Uint8Array(options.slot)
    this.#maxWorkers = Math.max(1, options.maxWorkers)
    this.#cores = Math.max(1, Math.min(options.cores, this.#maxWorkers))
    this.#shares = options.inPlace === 'auto' && options.keyCopies !== undefined && this.#cores > 1
    // Signing in place on every call, one worker does what cannot run in place, unless the device is
    // slow; signing beside the workers, the main thread is one of the cores' signers.
    this.#minWorkers = options.inPlace === 'always' ? 1 : this.#shares ? this.#cores - 1 : this.#cores
    this.#maxQueue = options.maxQueue
    this.#native = options.native
    this.#inPlaceMode = options.inPlace
    this.#keyCopies = options.keyCopies
  }

  /**
   * A pool with its first worker started, or undefined when the module cannot serve workers: its
   * loads on other threads are separate instances that do not share the main thread's login.
   */
  static async start(options: WorkerPoolOptions): Promise<WorkerPool | undefined> {
    const pool = new WorkerPool(options)
    const worker = pool.#startWorker()
    if (await worker.ready) return pool
    await worker.close()
    return undefined
  }

  /** Sessions the workers hold now. */
  get openSessions(): number {
    return this.#workers.reduce((sum, w) => sum + w.sessions, this.#inPlace?.sessions ?? 0)
  }

  /**
   * Runs one operation on a worker (or in place); resolves with its bytes or a verification's result.
   * The caller must not change the bytes of `key` or `operation` until it settles.
   */
  run(key: Uint8Array, operation: Operation, options: RunOptions): Promise<Uint8Array | boolean> {
    if (this.#closed) return Promise.reject(new ClosedError())
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(new QueueFullError(this.#queue.length))
    if (options.signal?.aborted) return Promise.reject(options.signal.reason)
    return new Promise((resolve, reject) => {
      const mechanismId = this.#mechanisms.idOf(entryOf(operation.mechanism, operation.parameter))
      this.#queue.push(new Pending(mechanismId, mechanismId * OPS.length + OP_CODES[operation.op], key, operation, options, resolve, reject))
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
    for (const worker of this.#workers) worker.retarget(this.#slot)
    this.#inPlace?.retarget(this.#slot)
  }

  /**
   * Takes no new request; answers the ones queued and under way (each within its deadline), then
   * stops the workers (closing their sessions).
   */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#queue.length > 0)
      await new Promise<void>((resolve) => {
        this.#drained = resolve
      })
    this.#stopListening()
    clearInterval(this.#sweeper)
    await Promise.all(this.#workers.map((worker) => worker.close()))
    this.#workers.length = 0
    this.#closeInPlace()
  }

  #flush(): void {
    this.#flushScheduled = false
    // The module is being initialized again: batches wait until it is done.
    if (this.#activity.held) return
    if (this.#inPlaceMode !== 'never' && this.#flushInPlace() === 'next turn') return
    if (this.#queue.length === 0) this.#drained?.()
    const kept = this.#kept()
    while (this.#queue.length > kept) {
      const worker = this.#freeWorker(this.#queue[kept])
      if (!worker) break
      // No bigger than the device's speed allows, and spread over the free pipeline places, so that
      // a worker has its next batch at hand when it finishes one instead of waiting for the main thread.
      const share = Math.ceil((this.#queue.length - kept) / this.#freePlaces())
      const size = this.#batchSize(kept, Math.min(MAX_BATCH, share))
      const batch = this.#queue.splice(kept, size).filter((pending) => !pending.settled)
      if (batch.length > 0) worker.post(batch)
      if (this.#queue.length === 0) this.#drained?.()
    }
    if (kept > 0) this.#scheduleSpare()
  }

  /**
   * How many requests at the head of the queue the main thread keeps to sign beside the workers:
   * the share of one more free place, up to the first that may not be signed that way.
   */
  #kept(): number {
    if (!this.#spares()) return 0
    const share = Math.min(MAX_BATCH, Math.ceil(this.#queue.length / (this.#freePlaces() + 1)))
    let kept = 1
    while (kept < share && this.#mayShare(this.#queue[kept])) kept++
    return kept
  }

  /**
   * Whether the main thread signs the head of the queue beside the workers: it does so in this
   * pool, the workers are all started, the head may be, and the main thread has time to spare.
   */
  #spares(): boolean {
    if (!this.#shares || this.#workers.length < this.#minWorkers) return false
    const head = this.#queue[0]
    return head !== undefined && this.#mayShare(head) && !mainThreadLoad.busy
  }

  /** Whether `pending` may be signed beside the workers: it may run in place, and its kind is known to be fast (spareKind). */
  #mayShare(pending: Pending): boolean {
    return this.#fitsInPlace(pending) && this.#spareKind(pending.kind, false)
  }

  /** One signature of the queue's head in place at the event loop's next turn, so that the workers' answers are taken between two. */
  #scheduleSpare(): void {
    if (this.#spareScheduled) return
    this.#spareScheduled = true
    setImmediate(() => {
      this.#spareScheduled = false
      while (this.#queue[0]?.settled) this.#queue.shift()
      if (!this.#activity.held && this.#spares()) this.#runInPlace(this.#queue.shift()!)
      this.#flush()
    })
  }

  /**
   * Runs in place the requests at the head of the queue that may: with inPlace 'alone', a request
   * with nothing else queued or under way (the workers' parallelism is not wanted); with 'always',
   * each. Past IN_PLACE_TURN_MS they wait for the event loop's next turn (setImmediate). What may
   * not run in place goes on to the workers.
   */
  #flushInPlace(): 'next turn' | undefined {
    while (this.#queue[0]?.settled) this.#queue.shift()
    const alone = () => this.#queue.length === 1 && this.#workers.every((w) => w.batches.length === 0)
    while (this.#queue.length > 0 && (this.#inPlaceMode === 'always' || alone()) && this.#fitsInPlace(this.#queue[0])) {
      if (this.#turnOver()) {
        if (!this.#resumeScheduled) {
          this.#resumeScheduled = true
          setImmediate(() => {
            this.#resumeScheduled = false
            this.#flush()
          })
        }
        return 'next turn'
      }
      this.#runInPlace(this.#queue.shift()!)
    }
    return undefined
  }

  /**
   * Whether `pending` may run in place: a signature (see in-place.ts), of a kind timed at most
   * IN_PLACE_MS on a device that is fast at everything, with a small input, and a session to spare
   * within maxSessions.
   */
  #fitsInPlace(pending: Pending): boolean {
    if (pending.settled || this.#times.estimate(pending.kind) === undefined || this.#neverInPlace(pending)) return false
    return this.#inPlace !== undefined || this.#workers.length < this.#maxWorkers
  }

  /**
   * Whether the main thread still stands in for the last of the cores' workers ('auto') as `next`,
   * the request to be posted, waits: it has time to spare, and `next` is not known to be a request
   * it cannot sign beside the workers.
   */
  #standsIn(next: Pending): boolean {
    return !this.#neverInPlace(next) && this.#spareKind(next.kind, true) && !mainThreadLoad.busy
  }

  /** Whether `kind`'s fastest batch since its first took SPARE_MS or less a request; `unknown` until it has one. */
  #spareKind(kind: number, unknown: boolean): boolean {
    const fastest = this.#times.fastest(kind)
    return fastest === undefined ? unknown : fastest <= SPARE_MS
  }

  /** Whether `pending` cannot run in place whatever is under way: not a small signature, or of a kind (or a device) timed beyond IN_PLACE_MS. */
  #neverInPlace({ kind, operation }: Pending): boolean {
    if (operation.op !== 'sign' || operation.data.byteLength > IN_PLACE_MAX_INPUT) return true
    return (this.#times.estimate(kind) ?? 0) > IN_PLACE_MS || (this.#times.overall ?? 0) > IN_PLACE_MS
  }

  /** True once calls in place have held the event loop IN_PLACE_TURN_MS since it last turned. */
  #turnOver(): boolean {
    return this.#turnStart !== undefined && performance.now() - this.#turnStart > IN_PLACE_TURN_MS
  }

  #runInPlace(pending: Pending): void {
    if (this.#turnStart === undefined) {
      this.#turnStart = performance.now()
      setImmediate(() => (this.#turnStart = undefined)).unref()
    }
    // A synchronous call of the main thread: no ModuleActivity accounting (#flush waits while it is held).
    this.#inPlace ??= new InPlaceRunner(this.#native, this.#slot, this.#keyCopies)
    const ms = this.#inPlace.run(pending)
    this.#times.record([pending.kind], ms)
    mainThreadLoad.inPlace(ms)
  }

  #closeInPlace(): void {
    this.#inPlace?.close()
    this.#inPlace = undefined
  }

  /** How many requests of the queue from `from` on (at most `limit`) the device does in BATCH_MS, by their kinds' times; 1 at least. */
  #batchSize(from: number, limit: number): number {
    let cost = 0
    let size = 0
    for (let i = from; i < this.#queue.length; i++) {
      const pending = this.#queue[i]
      if (size >= limit) break
      const ms = this.#times.estimate(pending.kind)
      if (ms === undefined || cost + ms > BATCH_MS) break
      cost += ms
      size++
    }
    return Math.max(1, size)
  }

  /** Answers the requests whose deadline passed or whose signal aborted; they leave the queue. */
  #sweep(): void {
    const now = performance.now()
    for (const pending of [...this.#queue, ...this.#workers.flatMap((w) => w.batches.flat())]) {
      const { deadline, signal, timeoutMs } = pending.options
      if (pending.settled || (now < deadline && !signal?.aborted)) continue
      pending.answer(signal?.aborted ? signal.reason : new TimeoutError(timeoutMs))
    }
    for (let i = this.#queue.length - 1; i >= 0; i--) if (this.#queue[i].settled) this.#queue.splice(i, 1)
    if (this.#queue.length === 0) this.#drained?.()
    if (this.#queue.length === 0 && this.#workers.every((w) => w.batches.length === 0)) {
      clearInterval(this.#sweeper)
      this.#sweeper = undefined
    }
  }

  /** Batches the workers (running, and yet to start at the next request) can take now. */
  #freePlaces(): number {
    const waiting = Math.max(0, this.#minWorkers - this.#workers.length)
    return Math.max(
      1,
      this.#workers.reduce((sum, w) => sum + Math.max(0, PIPELINE - w.batches.length), waiting * PIPELINE),
    )
  }

  /**
   * The least busy worker with room in its pipeline; a new one while below the minimum, when the
   * main thread no longer stands in for the last of the cores' workers ('auto'), or when the device is slow.
   */
  #freeWorker(next: Pending): WorkerLink | undefined {
    const idle = this.#workers.find((w) => w.batches.length === 0)
    if (idle) return idle
    const slow = (this.#times.overall ?? 0) >= SLOW_MS
    const count = this.#workers.length
    // The main thread no longer stands in for the last of the cores' workers.
    const standInEnds = this.#shares && count < this.#cores && !this.#standsIn(next)
    if (count < this.#minWorkers || (slow && count < this.#maxWorkers) || standInEnds) {
      // The in-place session gives way to a worker, within maxSessions.
      if (this.#workers.length + 1 >= this.#maxWorkers) this.#closeInPlace()
      return this.#startWorker()
    }
    // A slow device gets one batch per worker at a time: a second would wait behind the first.
    return slow ? undefined : this.#workers.find((w) => w.batches.length < PIPELINE)
  }

  #startWorker(): WorkerLink {
    const setup = { library: this.#library, slot: this.#slot, keyCopies: this.#keyCopies?.buffer as SharedArrayBuffer | undefined }
    const worker = new WorkerLink(setup, this.#mechanisms, this.#activity, {
      done: (_, batch, busyMs) => {
        this.#times.record(
          batch.map((pending) => pending.kind),
          busyMs,
        )
        this.#flush()
      },
      // A worker died (it could not load the module, say): its requests failed, the others go on.
      failed: (link) => {
        this.#workers.splice(this.#workers.indexOf(link), 1)
        this.#flush()
      },
    })
    this.#workers.push(worker)
    return worker
  }
}
