// The raw binding, asynchronously: C_SignInit then C_SignAsync (libuv thread pool) in one
// process, each of the `concurrency` loops on a session of its own (a pool as big as the concurrency).
import { runContender, signingInput } from '../lib/contender.js'
import { measure } from '../lib/measure.js'
import { MECHANISMS, openRaw } from '../lib/pkcs11.js'
import { KEYS } from '../lib/token.js'

runContender(async ({ alg, token }) => {
  const raw = openRaw(token, KEYS[alg].label)
  const { mechanism, input, length } = MECHANISMS[alg]
  const data = signingInput(alg)
  const sessions = [raw.firstSession]
  return {
    cell({ concurrency, duration, warmup }) {
      while (sessions.length < concurrency) sessions.push(raw.session())
      return measure({
        concurrency,
        duration,
        warmup,
        op: async (worker) => {
          const session = sessions[worker]
          const bytes = input(data)
          const signature = Buffer.allocUnsafe(length)
          raw.p11.C_SignInit(session, mechanism, raw.key)
          // pkcs11js does not hold the buffers while the thread pool uses them: this function does.
          const signed = await raw.p11.C_SignAsync(session, bytes, signature)
          return [signed, bytes, signature]
        },
      })
    },
    close: () => raw.close(),
  }
})
