// One benchmark cell in one process: `concurrency` loops call `op` back to back for `duration`
// seconds (after a warm-up that is not counted), recording each call's latency and, while they run,
// how late the event loop is (perf_hooks.monitorEventLoopDelay, 1 ms resolution), how busy it is
// (its utilization) and the process's CPU time (all threads) per call.
import { createHistogram, monitorEventLoopDelay, performance } from 'node:perf_hooks'

const NS_PER_MS = 1e6

/**
 * @param {object} cell
 * @param {(worker: number) => Promise<unknown>} cell.op  one signature; `worker` is 0..concurrency-1
 * @param {number} cell.concurrency  calls in flight at once
 * @param {number} cell.duration  seconds measured
 * @param {number} [cell.warmup]  seconds run first, not measured
 * @returns {Promise<Result>}
 *
 * @typedef {{ concurrency: number, ops: number, seconds: number, opsPerSec: number, p50Ms: number|null,
 *   p99Ms: number|null, errors: number, errorSample?: string, loopP99Ms: number|null,
 *   cpuMicrosPerOp?: number|null, loopUtilization?: number }} Result
 */
export async function measure({ op, concurrency, duration, warmup = 0 }) {
  if (warmup > 0) await loop({ op, concurrency, until: performance.now() + warmup * 1000 })

  const latency = createHistogram()
  const loopDelay = monitorEventLoopDelay({ resolution: 1 })
  loopDelay.enable()
  const cpu = process.cpuUsage()
  const utilization = performance.eventLoopUtilization()
  const start = performance.now()
  const { ops, errors, errorSample } = await loop({ op, concurrency, until: start + duration * 1000, latency })
  const seconds = (performance.now() - start) / 1000
  const cpuUsed = process.cpuUsage(cpu)
  const loopUtilization = performance.eventLoopUtilization(utilization).utilization
  loopDelay.disable()

  return {
    concurrency,
    ops,
    seconds,
    opsPerSec: ops / seconds,
    p50Ms: ops ? latency.percentile(50) / NS_PER_MS : null,
    p99Ms: ops ? latency.percentile(99) / NS_PER_MS : null,
    errors,
    ...(errorSample ? { errorSample } : {}),
    loopP99Ms: loopDelay.count ? loopDelay.percentile(99) / NS_PER_MS : null,
    cpuMicrosPerOp: ops ? (cpuUsed.user + cpuUsed.system) / ops : null,
    loopUtilization,
  }
}

/** Runs `concurrency` loops of `op` until the deadline; counts successes and failures. */
async function loop({ op, concurrency, until, latency }) {
  let ops = 0
  let errors = 0
  let errorSample
  const worker = async (index) => {
    while (performance.now() < until) {
      const t0 = process.hrtime.bigint()
      try {
        await op(index)
        latency?.record(process.hrtime.bigint() - t0 || 1n)
        ops++
      } catch (error) {
        errors++
        errorSample ??= describe(error)
        // A failure may come back at once (no I/O): yield, so that calls still in flight can finish.
        await new Promise((resolve) => setImmediate(resolve))
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)))
  return { ops, errors, errorSample }
}

/** A short one-line description of an error, with its token error code when there is one. */
export function describe(error) {
  const code = error?.cause?.code ?? error?.code
  const message = String(error?.message ?? error).split('\n')[0]
  return code && !message.includes(code) ? `${code}: ${message}` : message
}

/** The median of `values` (the lower one of an even count), nulls left out; null when none is left. */
export function median(values) {
  const sorted = values.filter((v) => v != null).sort((a, b) => a - b)
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : null
}

/** Summary of several processes' cells measured over the same period (the device-limit run). */
export function combine(results) {
  const seconds = Math.max(...results.map((r) => r.seconds))
  const ops = results.reduce((sum, r) => sum + r.ops, 0)
  const errors = results.reduce((sum, r) => sum + r.errors, 0)
  return {
    concurrency: results.length,
    ops,
    seconds,
    opsPerSec: results.reduce((sum, r) => sum + r.opsPerSec, 0),
    // Percentiles cannot be added up: the median of the medians, the worst of the 99th percentiles.
    p50Ms: median(results.map((r) => r.p50Ms)),
    p99Ms: Math.max(...results.map((r) => r.p99Ms)),
    errors,
    ...(results.find((r) => r.errorSample) ? { errorSample: results.find((r) => r.errorSample).errorSample } : {}),
    loopP99Ms: null,
  }
}
