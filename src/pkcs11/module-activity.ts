/**
 * Who is inside a module now. PKCS#11 leaves every call undefined after C_Finalize, and threads
 * other than the main one call the module (signing workers, libuv's pool): before the module is
 * finalized, new calls are held back and the ones under way are waited for.
 *
 * Synchronous calls of the main thread need no accounting: nothing else runs on the main thread
 * while C_Finalize does.
 */
export class ModuleActivity {
  #inside = 0
  #held: Promise<void> | undefined
  #release: (() => void) | undefined
  #idle: Array<() => void> = []
  readonly #reopened = new Set<() => void>()

  /** True while new calls are held back (the module is being finalized). */
  get held(): boolean {
    return this.#held !== undefined
  }

  /**
   * Runs an asynchronous call into the module, after any finalization in progress is over.
   *
   * @example
   * await activity.run(() => callAsync('C_GenerateKeyPair', [], () => native.C_GenerateKeyPairAsync(...)))
   */
  async run<T>(call: () => Promise<T>): Promise<T> {
    while (this.#held) await this.#held
    this.enter()
    try {
      return await call()
    } finally {
      this.leave()
    }
  }

  /** A call (or a batch of them) enters the module; the caller checked `held` first. */
  enter(): void {
    this.#inside++
  }

  leave(): void {
    if (--this.#inside === 0) for (const resolve of this.#idle.splice(0)) resolve()
  }

  /** `listener` runs each time held calls may go on (a dispatcher resumes its queue). */
  onReopen(listener: () => void): () => void {
    this.#reopened.add(listener)
    return () => this.#reopened.delete(listener)
  }

  /**
   * Holds new calls back, waits until none is under way, runs `critical` (C_Finalize and
   * C_Initialize), then lets the held calls go on.
   */
  async exclusive<T>(critical: () => T): Promise<T> {
    while (this.#held) await this.#held
    this.#held = new Promise((resolve) => {
      this.#release = resolve
    })
    try {
      if (this.#inside > 0) await new Promise<void>((resolve) => this.#idle.push(resolve))
      return critical()
    } finally {
      const release = this.#release!
      this.#held = undefined
      this.#release = undefined
      release()
      for (const listener of this.#reopened) listener()
    }
  }
}
