// This project, as users meet it: unmodified jose SignJWT, routed to the token by hsm.installGlobal().
import { SignJWT } from 'jose'
import { Pkcs11Crypto } from '../../dist/index.js'
import { CLAIMS, runContender } from '../lib/contender.js'
import { KEYS } from '../lib/token.js'

runContender(async ({ alg, token }) => {
  const hsm = await Pkcs11Crypto.open({ library: token.module, token: { label: token.label }, pin: token.pin })
  const { privateKey } = await hsm.keys.get({ label: KEYS[alg].label }, { algorithm: alg })
  const uninstall = hsm.installGlobal()
  return {
    sign: () => new SignJWT(CLAIMS).setProtectedHeader({ alg }).sign(privateKey),
    close: async () => {
      uninstall()
      await hsm.close()
    },
  }
})
