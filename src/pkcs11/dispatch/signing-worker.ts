/**
 * A signing worker: a thread with its own session (a SessionSigner) that runs the batches the main
 * thread writes into shared memory. It sleeps in Atomics.wait between batches, with no event loop
 * of its own to turn. Short operations cost less this way than a hop to the libuv pool each, and
 * nothing here can block the main thread's event loop.
 */
import { performance } from 'node:perf_hooks'
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads'
import pkcs11js from 'pkcs11js'
import { BatchMemory } from './batch-memory.js'
import { readParameter, withCallParameter } from './call-parameter.js'
import { SessionCopies } from './session-copies.js'
import { SessionSigner, SignerFailure } from './session-signer.js'
import { CONTROL, LAYOUT, NOT_PKCS11, OPS, STATUS, type Failure, type FromWorker, type MechanismEntry, type ToWorker, type WorkerSetup } from './protocol.js'

const setup = workerData as WorkerSetup & { port: MessagePort }
const native = new pkcs11js.PKCS11()
native.load(setup.library)
/**
 * The main thread initialized the library for the process, so C_Initialize here should answer
 * ALREADY_INITIALIZED: this load shares the main thread's login and handles. A module that
 * initializes again (p11-kit-client.so: each load is its own connection) does not share them: this
 * worker is no use, and says so.
 */
let shared = false
try {
  native.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
  native.C_Finalize()
} catch (error) {
  if ((error as { code?: number }).code !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error
  shared = true
}
parentPort!.postMessage({ type: 'ready', shared } satisfies FromWorker)

const control = new Int32Array(setup.control)
const memories = setup.memories.map((buffer) => new BatchMemory(buffer))
const copies = setup.keyCopies && new SessionCopies(new Int32Array(setup.keyCopies))
const signer = new SessionSigner(native, setup.slot, copies)
const mechanisms: MechanismEntry[] = []
/** Key PINs by batch number: a batch's may arrive while an earlier batch is still to run. */
const keyPins = new Map<number, Array<string | undefined>>()

/** Takes in the messages sent before the batches posted so far. */
function readMessages(): void {
  for (let received; (received = receiveMessageOnPort(setup.port));) {
    const message = received.message as ToWorker
    if (message.type === 'mechanisms') mechanisms.push(...message.mechanisms)
    else if (message.type === 'memory') memories[message.place] = new BatchMemory(message.memory)
    else if (message.type === 'keyPins') keyPins.set(message.batch, message.keyPins)
    else signer.retarget(message.slot)
  }
}

/** Runs the batch in `memory`; every request gets a status, and the results follow the requests' bytes. */
function run(memory: BatchMemory, pins: Array<string | undefined> | undefined): void {
  const { layout, status, bytes } = memory
  const view = (offset: number, length: number) => Buffer.from(bytes.buffer, bytes.byteOffset + offset, length)
  const failures: Failure[] = []
  let offset = 0
  let outputOffset = memory.requestBytes
  for (let i = 0; i < memory.count; i++) {
    const at = i * LAYOUT.size
    const keyLength = layout[at + LAYOUT.keyLength]
    const dataLength = layout[at + LAYOUT.dataLength]
    const parameterLength = layout[at + LAYOUT.parameterLength]
    const last = layout[at + LAYOUT.last]
    const entry = mechanisms[layout[at + LAYOUT.mechanism]]
    const key = view(offset, keyLength)
    const data = view(offset + keyLength, dataLength)
    // Most requests (every signature) bring no parameter of their own: nothing to read or build.
    const mechanism =
      entry.fields.length === 0 ? entry.mechanism : withCallParameter(entry, readParameter(view(offset + keyLength + dataLength, parameterLength), entry.fields.length))
    const op = OPS[layout[at + LAYOUT.op]]
    offset += keyLength + dataLength + parameterLength + (op === 'verify' ? last : 0)
    status[i * STATUS.size + STATUS.code] = 0
    try {
      status[i * STATUS.size + STATUS.value] = signer.run(op, mechanism, key, data, view(op === 'verify' ? offset - last : outputOffset, last), pins?.[i])
    } catch (failure) {
      // Anything else is a bug here: it ends the worker, and the pool answers its requests with it.
      if (!(failure instanceof SignerFailure)) throw failure
      status[i * STATUS.size + STATUS.code] = failure.code ?? NOT_PKCS11
      failures.push({ index: i, fn: failure.fn, message: failure.message })
    }
    if (op !== 'verify') outputOffset += last
  }
  memory.failures = failures.length
  memory.sessions = signer.sessions
  if (failures.length > 0) setup.port.postMessage({ type: 'failures', failures } satisfies FromWorker)
}

for (let done = 0; ;) {
  Atomics.wait(control, CONTROL.posted, done)
  if (Atomics.load(control, CONTROL.stop)) break
  const posted = Atomics.load(control, CONTROL.posted)
  for (; done < posted; done++) {
    readMessages()
    const memory = memories[done % memories.length]
    const start = performance.now()
    run(memory, keyPins.get(done))
    keyPins.delete(done)
    memory.busyMs[0] = performance.now() - start
    Atomics.store(control, CONTROL.done, done + 1)
    Atomics.notify(control, CONTROL.done)
  }
}
readMessages()
signer.close()
Atomics.store(control, CONTROL.stopped, 1)
Atomics.notify(control, CONTROL.stopped)
