/**
 * A signing worker: its own session, synchronous C_SignInit + C_Sign (or C_Verify) for each request
 * of a batch. Short operations cost less this way than a hop to the libuv pool each, and nothing
 * here can block the main thread's event loop.
 */
import { performance } from 'node:perf_hooks'
import { parentPort, workerData } from 'node:worker_threads'
import pkcs11js from 'pkcs11js'
import { SESSION_LOST as SESSION_LOST_NAMES } from '../failures.js'
import { bytes } from './bytes.js'
import type { FromWorker, Request, Result, ToWorker, WorkerSetup } from './protocol.js'

const { library } = workerData as WorkerSetup
let { slot } = workerData as WorkerSetup
const C = pkcs11js as unknown as Record<string, number>
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
  native.C_Initialize({ flags: C.CKF_OS_LOCKING_OK })
  native.C_Finalize()
} catch (error) {
  if ((error as { code?: number }).code !== C.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error
  shared = true
}
parentPort!.postMessage({ type: 'ready', shared } satisfies FromWorker)

/** After these the session is gone: open a new one. */
const SESSION_LOST = new Set(SESSION_LOST_NAMES.map((name) => C[name]))
let session: Buffer | undefined

function openSession(): Buffer {
  session ??= native.C_OpenSession(Buffer.from(slot), C.CKF_SERIAL_SESSION | C.CKF_RW_SESSION)
  return session
}

function dropSession(): void {
  if (!session) return
  try {
    native.C_CloseSession(session)
  } catch {
    // already gone with the device
  }
  session = undefined
}

function run(request: Request): Result {
  let fn = 'C_OpenSession'
  let begun = false
  try {
    const s = openSession()
    const key = Buffer.from(request.key)
    if (request.op === 'sign') {
      fn = 'C_SignInit'
      native.C_SignInit(s, request.mechanism, key)
      begun = true
      if (request.keyPin !== undefined) {
        fn = 'C_Login'
        native.C_Login(s, C.CKU_CONTEXT_SPECIFIC, request.keyPin)
      }
      fn = 'C_Sign'
      // Buffer.alloc, not allocUnsafe: a pooled buffer would carry its whole 8 KiB slab back to the main thread.
      const signature = native.C_Sign(s, bytes(request.data), Buffer.alloc(request.outputLength))
      return { id: request.id, ok: true, value: signature.length === request.outputLength ? signature : signature.slice() }
    }
    // No signature is empty: answer without asking the token (which would refuse the empty buffer).
    if (request.signature.byteLength === 0) return { id: request.id, ok: true, value: false }
    fn = 'C_VerifyInit'
    native.C_VerifyInit(s, request.mechanism, key)
    begun = true
    fn = 'C_Verify'
    try {
      return { id: request.id, ok: true, value: native.C_Verify(s, bytes(request.data), bytes(request.signature)) }
    } catch (error) {
      const { code } = error as { code?: number }
      if (code === C.CKR_SIGNATURE_INVALID || code === C.CKR_SIGNATURE_LEN_RANGE) return { id: request.id, ok: true, value: false }
      throw error
    }
  } catch (error) {
    const { code, message } = error as { code?: number, message?: string }
    // A failure after the *Init may leave the operation active (SoftHSM does, for one): that session
    // must not serve the next request. A lost session is dropped too.
    if (begun || (code !== undefined && SESSION_LOST.has(code))) dropSession()
    return { id: request.id, ok: false, fn, code: code || undefined, message: String(message ?? error) }
  }
}

parentPort!.on('message', (message: ToWorker) => {
  if (message.type === 'slot') {
    dropSession()
    slot = message.slot
    return
  }
  if (message.type === 'close') {
    dropSession()
    parentPort!.postMessage({ type: 'closed' } satisfies FromWorker)
    return
  }
  const start = performance.now()
  const results = message.requests.map(run)
  parentPort!.postMessage({ type: 'results', results, busyMs: performance.now() - start, sessions: session ? 1 : 0 } satisfies FromWorker)
})
