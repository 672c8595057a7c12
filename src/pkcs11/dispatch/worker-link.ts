/**
 * The main thread's end of one signing worker: it writes batches into the worker's shared memory,
 * wakes it, waits for it with Atomics.waitAsync (no message, no event-loop handle) and answers
 * each request from the results.
 */
import { once } from 'node:events'
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads'
import { callFailure } from '../binding.js'
import type { ModuleActivity } from '../module-activity.js'
import { BatchMemory } from './batch-memory.js'
import type { MechanismIds } from './mechanism-ids.js'
import type { Pending } from './pending.js'
import { writeParameter } from './call-parameter.js'
import { CONTROL, LAYOUT, NOT_PKCS11, OP_CODES, STATUS, type Failure, type FromWorker, type ToWorker, type WorkerSetup } from './protocol.js'

/** Batches a worker may hold at once: one running, one waiting, so it never idles on the main thread. */
export const PIPELINE = 2
/** Room for requests and signatures a batch's memory starts with; it grows for bigger batches. */
const INITIAL_ROOM = 16 * 1024

export interface LinkEvents {
  /** The requests of `batch` are answered; the worker spent `busyMs` on them. */
  done(link: WorkerLink, batch: readonly Pending[], busyMs: number): void
  /** The worker died: its requests are answered with `error`. */
  failed(link: WorkerLink, error: Error): void
}

export class WorkerLink {
  /** Batches posted and not yet answered, oldest first. */
  readonly batches: Pending[][] = []
  /** Sessions the worker holds, as of its last batch. */
  sessions = 0
  /** Whether this load of the module shares the main thread's login (see signing-worker.ts). */
  readonly ready: Promise<boolean>
  readonly #thread: Worker
  readonly #port: MessagePort
  readonly #control = new Int32Array(new SharedArrayBuffer(CONTROL.words * 4))
  readonly #memories: BatchMemory[] = Array.from({ length: PIPELINE }, () => BatchMemory.withRoom(INITIAL_ROOM))
  readonly #mechanisms: MechanismIds
  readonly #events: LinkEvents
  /** A batch posted is a call inside the module until it is answered. */
  readonly #activity: ModuleActivity
  /** Mechanisms of the list sent to the worker. */
  #mechanismsSent = 0
  #posted = 0
  #done = 0
  #waiting = false
  #closing = false
  /** Called when the last batch under way is answered (or the worker died), for close(). */
  #onIdle?: () => void
  #dead = false

  constructor(setup: Pick<WorkerSetup, 'library' | 'slot' | 'keyCopies'>, mechanisms: MechanismIds, activity: ModuleActivity, events: LinkEvents) {
    this.#activity = activity
    const { port1, port2 } = new MessageChannel()
    this.#port = port1
    this.#mechanisms = mechanisms
    const workerData: WorkerSetup & { port: MessagePort } = {
      ...setup,
      control: this.#control.buffer as SharedArrayBuffer,
      memories: this.#memories.map((m) => m.buffer),
      port: port2,
    }
    this.#thread = new Worker(new URL('./signing-worker.js', import.meta.url), { workerData, transferList: [port2] })
    // Its load and C_Initialize of the module are calls inside it, until it says it is ready.
    activity.enter()
    this.ready = new Promise<boolean>((resolve, reject) => {
      this.#thread.once('message', (message: FromWorker) => {
        // Idle, it must not keep the process alive (an instance not closed must not hang the exit).
        if (this.batches.length === 0 && !this.#closing) this.#thread.unref()
        resolve(message.type === 'ready' && message.shared)
      })
      this.#thread.once('error', reject)
    }).finally(() => activity.leave())
    this.#events = events
    this.#thread.on('error', (error) => this.#die(error))
  }

  /** Writes `batch` into the next free memory and wakes the worker. */
  post(batch: Pending[]): void {
    const place = this.#posted % PIPELINE
    const room = batch.reduce((sum, pending) => sum + pending.size, 0)
    const capacity = this.#memories[place].bytes.byteLength
    // Grown for a batch that does not fit; shrunk back once batches are small again, so that one
    // large input does not hold its memory for the worker's life.
    if (room > capacity || capacity >= 8 * Math.max(INITIAL_ROOM, room)) {
      this.#memories[place] = BatchMemory.withRoom(Math.max(INITIAL_ROOM, 2 * room))
      this.#send({ type: 'memory', place, memory: this.#memories[place].buffer })
    }
    const keyPins = this.#write(this.#memories[place], batch)
    if (this.#mechanismsSent < this.#mechanisms.list.length) {
      this.#send({ type: 'mechanisms', mechanisms: this.#mechanisms.list.slice(this.#mechanismsSent) })
      this.#mechanismsSent = this.#mechanisms.list.length
    }
    if (keyPins) this.#send({ type: 'keyPins', batch: this.#posted, keyPins })
    this.batches.push(batch)
    this.#activity.enter()
    this.#posted++
    this.#thread.ref() // a request under way keeps the process alive, as any pending I/O does
    Atomics.store(this.#control, CONTROL.posted, this.#posted)
    Atomics.notify(this.#control, CONTROL.posted)
    this.#awaitDone()
  }

  /** The token is in `slot` now: the worker opens its next session there. */
  retarget(slot: Uint8Array): void {
    this.#send({ type: 'slot', slot })
  }

  /** Waits for the batches under way, then stops the worker, which closes its session. */
  async close(): Promise<void> {
    this.#closing = true
    this.#thread.ref() // an idle worker is unref'd; closing must still be waited for
    if (this.batches.length > 0)
      await new Promise<void>((resolve) => {
        this.#onIdle = resolve
      })
    if (!this.#dead) {
      // The worker closes its session: a call inside the module.
      this.#activity.enter()
      Atomics.store(this.#control, CONTROL.stop, 1)
      Atomics.add(this.#control, CONTROL.posted, 1) // wakes it
      Atomics.notify(this.#control, CONTROL.posted)
      // The worker may die instead (its death was answered already): its exit ends the wait too.
      await Promise.race([this.#next(CONTROL.stopped, 0), once(this.#thread, 'exit').catch(() => undefined)]).finally(() => this.#activity.leave())
    }
    await this.#thread.terminate()
  }

  #send(message: ToWorker): void {
    this.#port.postMessage(message)
  }

  /** Resolves when the control word `index` is no longer `value` (at once if it is not now). */
  async #next(index: number, value: number): Promise<void> {
    const wait = Atomics.waitAsync(this.#control, index, value)
    if (wait.async) await wait.value
  }

  /** Answers every batch the worker has finished, once it finishes the oldest one under way. */
  #awaitDone(): void {
    if (this.#waiting || this.batches.length === 0) return
    this.#waiting = true
    void this.#next(CONTROL.done, this.#done).then(() => {
      this.#waiting = false
      if (this.#dead) return
      const done = Atomics.load(this.#control, CONTROL.done)
      while (this.#done < done) {
        this.#activity.leave()
        this.#answer(this.#memories[this.#done++ % PIPELINE], this.batches.shift()!)
      }
      if (this.batches.length === 0) {
        if (this.#closing) this.#onIdle?.()
        else this.#thread.unref()
      }
      this.#awaitDone()
    })
  }

  /** The batch in the protocol's layout; returns its key PINs, if any request has one. */
  #write(memory: BatchMemory, batch: Pending[]): Array<string | undefined> | undefined {
    const { layout, bytes } = memory
    let keyPins: Array<string | undefined> | undefined
    let offset = 0
    batch.forEach(({ key, operation, mechanismId }, i) => {
      const at = i * LAYOUT.size
      layout[at + LAYOUT.op] = OP_CODES[operation.op]
      layout[at + LAYOUT.mechanism] = mechanismId
      layout[at + LAYOUT.keyLength] = key.byteLength
      layout[at + LAYOUT.dataLength] = operation.data.byteLength
      bytes.set(key, offset)
      bytes.set(operation.data, offset + key.byteLength)
      offset += key.byteLength + operation.data.byteLength
      const parameterLength = writeParameter(bytes, offset, operation.parameter)
      layout[at + LAYOUT.parameterLength] = parameterLength
      offset += parameterLength
      if (operation.op === 'verify') {
        layout[at + LAYOUT.last] = operation.signature.byteLength
        bytes.set(operation.signature, offset)
        offset += operation.signature.byteLength
      } else {
        layout[at + LAYOUT.last] = operation.outputLength
        if (operation.keyPin !== undefined) (keyPins ??= [])[i] = operation.keyPin
      }
    })
    memory.count = batch.length
    memory.requestBytes = offset
    return keyPins
  }

  /** Answers each request of `batch` from the results in `memory`. */
  #answer(memory: BatchMemory, batch: Pending[]): void {
    this.sessions = memory.sessions
    const failures = new Map<number, Failure>()
    if (memory.failures > 0) {
      const received = receiveMessageOnPort(this.#port)?.message as FromWorker | undefined
      if (received?.type === 'failures') for (const failure of received.failures) failures.set(failure.index, failure)
    }
    const { status, bytes } = memory
    let outputOffset = memory.requestBytes
    batch.forEach((pending, i) => {
      const code = status[i * STATUS.size + STATUS.code]
      const value = status[i * STATUS.size + STATUS.value]
      const { operation } = pending
      if (code !== 0) {
        const { fn = '', message = 'no reason given' } = failures.get(i) ?? {}
        pending.answer(callFailure(fn, code === NOT_PKCS11 ? undefined : code, message))
      } else {
        pending.answer(operation.op === 'verify' ? value === 1 : bytes.slice(outputOffset, outputOffset + value))
      }
      if (operation.op !== 'verify') {
        // The result's room is cleared: a decrypted or derived secret does not linger in the batch memory.
        bytes.fill(0, outputOffset, outputOffset + operation.outputLength)
        outputOffset += operation.outputLength
      }
    })
    this.#events.done(this, batch, memory.busyMs[0])
  }

  #die(error: Error): void {
    if (this.#dead) return
    this.#dead = true
    for (const pending of this.batches.flat()) pending.answer(error)
    for (const _ of this.batches) this.#activity.leave()
    this.batches.length = 0
    this.#onIdle?.()
    this.#events.failed(this, error)
  }
}
