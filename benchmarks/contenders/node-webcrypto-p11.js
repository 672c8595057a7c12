// node-webcrypto-p11 (PeculiarVentures, on graphene-pk11 and pkcs11js): the best-known Node peer.
// It keeps one session per Crypto instance, so signatures in parallel meet CKR_OPERATION_ACTIVE;
// those failures are counted as errors, not hidden. It hashes for SoftHSM's raw CKM_ECDSA itself.
import { Crypto } from 'node-webcrypto-p11'
import { NotAvailable, WEBCRYPTO, runContender, signingInput } from '../lib/contender.js'
import { KEYS } from '../lib/token.js'

runContender(async ({ alg, token }) => {
  const crypto = openSlotLabelled(token)
  const index = (await crypto.keyStorage.keys()).find((i) => i.startsWith('private-') && i.endsWith(`-${KEYS[alg].id}`))
  if (!index) throw new Error(`private key ${KEYS[alg].label} not listed`)
  let privateKey
  try {
    privateKey = await crypto.keyStorage.getItem(index, WEBCRYPTO[alg].key, false, ['sign'])
  } catch (error) {
    throw new NotAvailable(`node-webcrypto-p11: ${error.message}`)
  }
  const data = signingInput(alg)
  return {
    sign: () => crypto.subtle.sign(WEBCRYPTO[alg].sign, privateKey, data),
    close: () => crypto.close?.(),
  }
})

/** The `slot` option is an index into the slots with a token: take the one labelled token.label. */
function openSlotLabelled(token) {
  for (let slot = 0; slot < 8; slot++) {
    const crypto = new Crypto({ library: token.module, slot, readWrite: true })
    if (crypto.info?.name === token.label) {
      crypto.login(token.pin)
      return crypto
    }
  }
  throw new Error(`token ${token.label} not found`)
}
