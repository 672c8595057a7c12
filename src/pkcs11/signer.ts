/**
 * What signs with one key: a key on one token, or the same key on several tokens (a replica set,
 * as vendors sell HA groups), which spreads requests over the tokens that answer and steps around
 * one that does not.
 */
import { KeyNotFoundError } from '../errors.js'
import type { Mechanism } from './binding.js'
import type { KeyOperation } from './dispatch/protocol.js'
import { remedyFor } from './failures.js'

/** Per call: a key PIN, a signal to give up, a deadline of its own; `failFast` to not wait for a token that went away. */
export interface CallOptions {
  keyPin?: string
  signal?: AbortSignal
  timeout?: number
  failFast?: boolean
}

export interface Mechanisms {
  hasMechanism(mechanism: number): boolean
}

export interface Signer extends Mechanisms {
  /** False while its token is away (being reconnected) or refused the PIN. */
  readonly available: boolean
  sign(mechanism: Mechanism, data: Uint8Array, outputLength: number, options?: CallOptions): Promise<Uint8Array>
  verify(mechanism: Mechanism, data: Uint8Array, signature: Uint8Array, options?: CallOptions): Promise<boolean>
  /** Decrypts, encrypts, derives, unwraps or wraps (see KeyOperation); resolves with the bytes made. */
  operate(operation: KeyOperation, options?: CallOptions): Promise<Uint8Array>
}

/**
 * The same key on several tokens, used as one. Each call goes to the available member with the
 * fewest calls under way; a member whose token fails (or is away) is skipped at once, and the last
 * one tried waits for its token within the deadline. A member comes back by itself when its token
 * does.
 *
 * @example
 * const key = new ReplicaSet([tokenA.signer(refA), tokenB.signer(refB)])
 */
export class ReplicaSet implements Signer {
  readonly #members: Array<{ signer: Signer; inFlight: number }>

  constructor(signers: Signer[]) {
    this.#members = signers.map((signer) => ({ signer, inFlight: 0 }))
  }

  get available(): boolean {
    return this.#members.some((m) => m.signer.available)
  }

  /** Calls under way on each member, in order; for tests and monitoring. */
  get load(): number[] {
    return this.#members.map((m) => m.inFlight)
  }

  hasMechanism(mechanism: number): boolean {
    return this.#members.every((m) => m.signer.hasMechanism(mechanism))
  }

  sign(mechanism: Mechanism, data: Uint8Array, outputLength: number, options: CallOptions = {}): Promise<Uint8Array> {
    return this.#spread((signer, failFast) => signer.sign(mechanism, data, outputLength, { ...options, failFast }))
  }

  verify(mechanism: Mechanism, data: Uint8Array, signature: Uint8Array, options: CallOptions = {}): Promise<boolean> {
    return this.#spread((signer, failFast) => signer.verify(mechanism, data, signature, { ...options, failFast }))
  }

  operate(operation: KeyOperation, options: CallOptions = {}): Promise<Uint8Array> {
    return this.#spread((signer, failFast) => signer.operate(operation, { ...options, failFast }))
  }

  async #spread<T>(run: (signer: Signer, failFast: boolean) => Promise<T>): Promise<T> {
    const order = [...this.#members].sort((a, b) => Number(b.signer.available) - Number(a.signer.available) || a.inFlight - b.inFlight)
    let failure: unknown
    for (const [i, member] of order.entries()) {
      member.inFlight++
      try {
        return await run(member.signer, i < order.length - 1)
      } catch (error) {
        // Only a token's absence or ill health (or a member that came back without the key) moves
        // the call on; a bad input would fail everywhere.
        if (remedyFor(error) !== 'reconnect' && !(error instanceof KeyNotFoundError)) throw error
        failure = error
      } finally {
        member.inFlight--
      }
    }
    throw failure
  }
}
