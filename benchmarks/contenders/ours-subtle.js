// This project without jose on top: bare hsm.subtle.sign over the same bytes a JWT would sign.
import { Pkcs11Crypto } from '../../dist/index.js'
import { WEBCRYPTO, runContender, signingInput } from '../lib/contender.js'
import { KEYS } from '../lib/token.js'

runContender(async ({ alg, token }) => {
  const hsm = await Pkcs11Crypto.open({ library: token.module, token: { label: token.label }, pin: token.pin })
  const { privateKey } = await hsm.keys.get({ label: KEYS[alg].label }, { algorithm: alg })
  const data = signingInput(alg)
  return {
    sign: () => hsm.subtle.sign(WEBCRYPTO[alg].sign, privateKey, data),
    close: () => hsm.close(),
  }
})
