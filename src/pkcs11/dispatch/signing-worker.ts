/**
 * A signing worker: a thread with its own session (a SessionSigner) that runs the batches the main
 * thread sends. Short operations cost less this way than a hop to the libuv pool each, and nothing
 * here can block the main thread's event loop.
 */
import { performance } from 'node:perf_hooks'
import { parentPort, workerData } from 'node:worker_threads'
import pkcs11js from 'pkcs11js'
import { SessionSigner, SignerFailure } from './session-signer.js'
import { LAYOUT, NOT_PKCS11, SIGN, STATUS, type Batch, type Failure, type FromWorker, type Results, type ToWorker, type WorkerSetup } from './protocol.js'

const { library, slot } = workerData as WorkerSetup
const native = new pkcs11js.PKCS11()
native.load(library)
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

const signer = new SessionSigner(native, slot)
const mechanisms: pkcs11js.Mechanism[] = []

/** Runs a batch; every request gets a status, and the signatures share one buffer. */
function run({ layout, bytes, newMechanisms, keyPins }: Batch): Results {
  mechanisms.push(...newMechanisms)
  const count = layout.length / LAYOUT.size
  let outputSize = 0
  for (let i = 0; i < count; i++) if (layout[i * LAYOUT.size + LAYOUT.op] === SIGN) outputSize += layout[i * LAYOUT.size + LAYOUT.last]
  const output = new Uint8Array(outputSize)
  const status = new Int32Array(count * STATUS.size)
  const failures: Failure[] = []
  const view = (offset: number, length: number) => Buffer.from(bytes.buffer, bytes.byteOffset + offset, length)
  let offset = 0
  let outputOffset = 0
  for (let i = 0; i < count; i++) {
    const [op, mechanismId, keyLength, dataLength, last] = layout.subarray(i * LAYOUT.size, (i + 1) * LAYOUT.size)
    const key = view(offset, keyLength)
    const data = view(offset + keyLength, dataLength)
    const signature = op === SIGN ? undefined : view(offset + keyLength + dataLength, last)
    offset += keyLength + dataLength + (signature?.length ?? 0)
    try {
      if (signature) {
        status[i * STATUS.size + STATUS.value] = Number(signer.verify(mechanisms[mechanismId], key, data, signature))
      } else {
        status[i * STATUS.size + STATUS.value] = signer.sign(mechanisms[mechanismId], key, data, Buffer.from(output.buffer, outputOffset, last), keyPins?.[i])
      }
    } catch (error) {
      const failure = error instanceof SignerFailure ? error : new SignerFailure('', undefined, String(error))
      status[i * STATUS.size + STATUS.code] = failure.code ?? NOT_PKCS11
      failures.push({ index: i, fn: failure.fn, message: failure.message })
    }
    if (!signature) outputOffset += last
  }
  return { status, output, failures, busyMs: 0, sessions: signer.sessions }
}

parentPort!.on('message', (message: ToWorker) => {
  if (message.type === 'slot') return signer.retarget(message.slot)
  if (message.type === 'close') {
    signer.close()
    return parentPort!.postMessage({ type: 'closed' } satisfies FromWorker)
  }
  const start = performance.now()
  const results = run(message)
  results.busyMs = performance.now() - start
  parentPort!.postMessage({ type: 'results', ...results } satisfies FromWorker, [results.status.buffer, results.output.buffer])
})
