/**
 * The shared memory of one batch: its requests and, once the worker is done, their results.
 *
 *   header   Int32 x 8    count of requests, bytes the requests take, failures, sessions the worker holds
 *   busyMs   Float64      time the worker spent on the batch
 *   layout   Uint32       LAYOUT.size numbers a request
 *   status   Int32        STATUS.size numbers a request
 *   bytes    Uint8        the requests' key handles, inputs and signatures, then the signatures made
 */
import { LAYOUT, STATUS } from './protocol.js'

/** The most requests in a batch. */
export const MAX_BATCH = 64
const HEADER = { count: 0, requestBytes: 1, failures: 2, sessions: 3, words: 8 } as const
const BUSY_OFFSET = HEADER.words * 4
const LAYOUT_OFFSET = BUSY_OFFSET + 8
const STATUS_OFFSET = LAYOUT_OFFSET + MAX_BATCH * LAYOUT.size * 4
const BYTES_OFFSET = STATUS_OFFSET + MAX_BATCH * STATUS.size * 4
const PAGE = 4096

export class BatchMemory {
  readonly buffer: SharedArrayBuffer
  readonly header: Int32Array
  readonly busyMs: Float64Array
  readonly layout: Uint32Array
  readonly status: Int32Array
  readonly bytes: Uint8Array

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer
    this.header = new Int32Array(buffer, 0, HEADER.words)
    this.busyMs = new Float64Array(buffer, BUSY_OFFSET, 1)
    this.layout = new Uint32Array(buffer, LAYOUT_OFFSET, MAX_BATCH * LAYOUT.size)
    this.status = new Int32Array(buffer, STATUS_OFFSET, MAX_BATCH * STATUS.size)
    this.bytes = new Uint8Array(buffer, BYTES_OFFSET)
  }

  /** Memory for batches of up to `bytes` bytes of requests and signatures, in whole pages. */
  static withRoom(bytes: number): BatchMemory {
    return new BatchMemory(new SharedArrayBuffer(Math.ceil((BYTES_OFFSET + bytes) / PAGE) * PAGE))
  }

  get count(): number {
    return this.header[HEADER.count]
  }
  set count(value: number) {
    this.header[HEADER.count] = value
  }

  /** Where the requests' bytes end and the signatures begin. */
  get requestBytes(): number {
    return this.header[HEADER.requestBytes]
  }
  set requestBytes(value: number) {
    this.header[HEADER.requestBytes] = value
  }

  get failures(): number {
    return this.header[HEADER.failures]
  }
  set failures(value: number) {
    this.header[HEADER.failures] = value
  }

  get sessions(): number {
    return this.header[HEADER.sessions]
  }
  set sessions(value: number) {
    this.header[HEADER.sessions] = value
  }
}
