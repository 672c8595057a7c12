// Test keys: made by Node, put on the token with tools we did not write (softhsm2-util,
// pkcs11-tool, the raw binding), so that what the library signs can be checked against Node.
import { execFileSync } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { PIN } from './softhsm.js'

const createSecret = fileURLToPath(new URL('./create-secret.cjs', import.meta.url))

/** Node key pairs, imported into `token`: { rsa, rsa3072, p256, p384, p521, ed25519, hmac } by label. */
export function provisionTestKeys(hsm, token) {
  const specs = {
    rsa: ['rsa', { modulusLength: 2048 }, '01'],
    p256: ['ec', { namedCurve: 'P-256' }, '02'],
    p384: ['ec', { namedCurve: 'P-384' }, '03'],
    p521: ['ec', { namedCurve: 'P-521' }, '04'],
    ed25519: ['ed25519', {}, '05'],
    rsa1024: ['rsa', { modulusLength: 1024 }, '06'],
  }
  const keys = {}
  for (const [label, [type, options, id]] of Object.entries(specs)) {
    // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
    const pair = generateKeyPairSync(type, options)
    hsm.importKey(token, pair.privateKey.export({ format: 'pem', type: 'pkcs8' }), { label, id })
    keys[label] = { ...pair, id, label }
  }
  // SoftHSM wants an HMAC key at least as long as the hash output.
  const secret = randomBytes(64)
  execFileSync(process.execPath, [createSecret, hsm.module, token, PIN, 'hmac', '07', secret.toString('hex')], { env: hsm.env })
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
  keys.hmac = { secret, id: '07', label: 'hmac' }
  return keys
}
