/**
 * How long one request of each kind (an operation with one mechanism: an AES-GCM decrypt, an
 * RSA-2048 signature, an ECDH derive) keeps the device busy, learnt from the times of the batches
 * the kinds ran in. A batch is then sized by what its requests cost, so that a microsecond AES call
 * and an RSA decryption are not averaged into one figure that fits neither.
 *
 * @example
 * const times = new ServiceTimes()
 * times.record([rsa, rsa, aes], 2.1)  // a batch of three took 2.1 ms
 * times.estimate(aes)                 // ms, or undefined for a kind never timed
 * times.fastest(aes)                  // the least ms of a batch since its first
 */
/** A kind's fastest time may rise by this factor a batch. */
const FASTEST_RISE = 1.05

export class ServiceTimes {
  readonly #byKind = new Map<number, number>()
  /** Each kind's least time of a request in a batch, the first batch left out. */
  readonly #fastest = new Map<number, number>()
  #overall: number | undefined

  /** The moving average over every request, whatever its kind: a slow device is slow at everything. */
  get overall(): number | undefined {
    return this.#overall
  }

  /** Ms one request of `kind` takes, or undefined until a batch with it has been timed. */
  estimate(kind: number): number | undefined {
    return this.#byKind.get(kind)
  }

  /**
   * About the least ms one request of `kind` took in a batch lately, or undefined until its second
   * batch: what the kind costs the device, whatever a busy machine or a key's copy added to some
   * batches. The first batch is left out: it carries what a first call costs once (a session
   * opened, a key copied). It rises by FASTEST_RISE a batch towards slower times, so that one lucky
   * batch does not set it for good.
   */
  fastest(kind: number): number | undefined {
    return this.#fastest.get(kind)
  }

  /**
   * A batch of requests of `kinds` kept the device busy `busyMs`. The time is shared among them in
   * proportion to what each kind was expected to cost (a kind not yet timed: the batch's average).
   */
  record(kinds: readonly number[], busyMs: number): void {
    if (kinds.length === 0) return
    const average = busyMs / kinds.length
    const known = [...this.#byKind.values()]
    const guess = (kind: number) => this.#byKind.get(kind) ?? (known.length ? known.reduce((a, b) => a + b) / known.length : average)
    const predicted = kinds.reduce((sum, kind) => sum + guess(kind), 0)
    const factor = predicted > 0 ? busyMs / predicted : 1
    for (const kind of new Set(kinds)) {
      const measured = guess(kind) * factor
      const before = this.#byKind.get(kind)
      this.#byKind.set(kind, before === undefined ? measured : 0.8 * before + 0.2 * measured)
      if (before !== undefined) this.#fastest.set(kind, Math.min(measured, (this.#fastest.get(kind) ?? Infinity) * FASTEST_RISE))
    }
    this.#overall = this.#overall === undefined ? average : 0.8 * this.#overall + 0.2 * average
  }
}
