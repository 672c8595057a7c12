/**
 * A signing worker: its own session, synchronous C_SignInit + C_Sign (or C_Verify) for each request
 * of a batch. Short operations cost less this way than a hop to the libuv pool each, and nothing
 * here can block the main thread's event loop.
 */
import { performance } from 'node:perf_hooks'
import { parentPort, workerData } from 'node:worker_threads'
import pkcs11js from 'pkcs11js'
import type { FromWorker, Request, Result, ToWorker, WorkerSetup } from './protocol.js'

const { library } = workerData as WorkerSetup
let { slot } = workerData as WorkerSetup
const C = pkcs11js as unknown as Record<string, number>
const native = new pkcs11js.PKCS11()
native.load(library)
try {
  // The main thread initialized the library for the process; this only binds our function list.
  native.C_Initialize({ flags: C.CKF_OS_LOCKING_OK })
} catch (error) {
  if ((error as { code?: number }).code !== C.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw error
}

/** After these the session is gone or holds an unfinished operation: open a new one. */
const SESSION_LOST = new Set([C.CKR_SESSION_HANDLE_INVALID, C.CKR_SESSION_CLOSED, C.CKR_DEVICE_REMOVED, C.CKR_DEVICE_ERROR, C.CKR_TOKEN_NOT_PRESENT])
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
  try {
    const s = openSession()
    const key = Buffer.from(request.key)
    if (request.op === 'sign') {
      fn = 'C_SignInit'
      native.C_SignInit(s, request.mechanism, key)
      if (request.keyPin !== undefined) {
        fn = 'C_Login'
        try {
          native.C_Login(s, C.CKU_CONTEXT_SPECIFIC, request.keyPin)
        } catch (error) {
          dropSession() // the sign operation is still active on it
          throw error
        }
      }
      fn = 'C_Sign'
      // Buffer.alloc, not allocUnsafe: a pooled buffer would carry its whole 8 KiB slab back to the main thread.
      const signature = native.C_Sign(s, Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength), Buffer.alloc(request.outputLength))
      return { id: request.id, ok: true, value: signature.length === request.outputLength ? signature : signature.subarray(0, signature.length).slice() }
    }
    fn = 'C_VerifyInit'
    native.C_VerifyInit(s, request.mechanism, key)
    fn = 'C_Verify'
    try {
      const { data, signature } = request
      return { id: request.id, ok: true, value: native.C_Verify(s, Buffer.from(data.buffer, data.byteOffset, data.byteLength), Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength)) }
    } catch (error) {
      const { code } = error as { code?: number }
      if (code === C.CKR_SIGNATURE_INVALID || code === C.CKR_SIGNATURE_LEN_RANGE) return { id: request.id, ok: true, value: false }
      throw error
    }
  } catch (error) {
    const { code, message } = error as { code?: number, message?: string }
    if (code !== undefined && SESSION_LOST.has(code)) dropSession()
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
