/**
 * How busy the main thread is with work other than the signatures it makes in place (for every
 * token of the process): its event loop's utilization, less the time spent signing in place, over
 * windows of at least WINDOW_MS, each taken when it is asked after the one before. A main thread
 * that serves requests, builds JWTs and more is the scarcer resource of the process: it signs
 * beside the workers only while it has time to spare.
 *
 * @example
 * mainThreadLoad.inPlace(0.05)  // a signature in place took 0.05 ms
 * mainThreadLoad.busy           // true once its other work held the loop most of the time, window after window
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks'

/** The shortest window the utilization is taken over. */
const WINDOW_MS = 50
/** Above this share of a window in other work, the main thread had none to spare. */
const BUSY = 0.75
/** It is busy after this many such windows in a row: a burst (start-up, a sweep) is not a load. */
const BUSY_WINDOWS = 3

class MainThreadLoad {
  #since: EventLoopUtilization = performance.eventLoopUtilization()
  /** When the window began: asked at every flush, the utilization is read once a window. */
  #windowStart = performance.now()
  #inPlaceMs = 0
  #busyWindows = 0

  /** The main thread spent `ms` signing in place. */
  inPlace(ms: number): void {
    this.#inPlaceMs += ms
  }

  /** Whether, in each of the last BUSY_WINDOWS windows, work other than signing in place held the event loop more than BUSY of the time. */
  get busy(): boolean {
    const now = performance.now()
    if (now - this.#windowStart >= WINDOW_MS) {
      const window = performance.eventLoopUtilization(this.#since)
      this.#busyWindows = (window.active - this.#inPlaceMs) / (window.active + window.idle) > BUSY ? this.#busyWindows + 1 : 0
      this.#since = performance.eventLoopUtilization()
      this.#windowStart = now
      this.#inPlaceMs = 0
    }
    return this.#busyWindows >= BUSY_WINDOWS
  }
}

/** The process's main thread: one, whatever the tokens and pools. */
export const mainThreadLoad = new MainThreadLoad()
