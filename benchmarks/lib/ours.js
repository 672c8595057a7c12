// This project as the contenders use it: the token opened, the alg's key found, and one signature
// made through unmodified jose `SignJWT` (routed by hsm.installGlobal()) or bare `hsm.subtle.sign`.
import { CLAIMS, WEBCRYPTO, signingInput } from './contender.js'
import { KEYS } from './token.js'

/**
 * How each process of a process per core opens the library (the ours-jose-cluster contender, and
 * ab.js and tpm.js as they run it): every signature in place, with a session for lookups, one in
 * place and one for a worker that takes what cannot run in place.
 */
export const CLUSTER_OPTIONS = { inPlace: 'always', maxSessions: 3 }

/**
 * `dist` is the URL of the built library's folder, ending in a slash (another build, for ab.js);
 * `via` is 'jose' or 'subtle'; `options` are more options of Pkcs11Crypto.open.
 * Resolves with `sign()` and `close()`.
 */
export async function openOurs({ alg, token, via, options, dist = new URL('../../dist/', import.meta.url).href }) {
  const { Pkcs11Crypto } = await import(new URL('index.js', dist).href)
  const hsm = await Pkcs11Crypto.open({ library: token.module, token: { label: token.label }, pin: token.pin, ...options })
  const { privateKey } = await hsm.keys.get({ label: KEYS[alg].label }, { algorithm: alg })
  if (via === 'jose') {
    const { SignJWT } = await import('jose')
    const uninstall = hsm.installGlobal()
    return {
      sign: () => new SignJWT(CLAIMS).setProtectedHeader({ alg }).sign(privateKey),
      close: async () => {
        uninstall()
        await hsm.close()
      },
    }
  }
  const data = signingInput(alg)
  return {
    sign: () => hsm.subtle.sign(WEBCRYPTO[alg].sign, privateKey, data),
    close: () => hsm.close(),
  }
}
