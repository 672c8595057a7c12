// Node's own WebCrypto with a software key: what signing costs when no device is involved.
import { webcrypto } from 'node:crypto'
import { WEBCRYPTO, runContender, signingInput } from '../lib/contender.js'

runContender(async ({ alg }) => {
  const { privateKey } = await webcrypto.subtle.generateKey(WEBCRYPTO[alg].key, false, ['sign', 'verify'])
  const data = signingInput(alg)
  return { sign: () => webcrypto.subtle.sign(WEBCRYPTO[alg].sign, privateKey, data) }
})
