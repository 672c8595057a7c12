// Issue #13, Java side: Java 17's SunPKCS11 on the same token keys gives the same answers as we
// do: KeyAgreement ECDH with a keytool-made EC key gives our Z, and AES/GCM/NoPadding with a token
// AES key our ciphertext. (SunPKCS11 has no OAEP cipher and no AES-KW to compare.)
import assert from 'node:assert/strict'
import { execFile as execFileCb } from 'node:child_process'
import { randomBytes, webcrypto } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { javaAvailable, keytoolGenKeyPair } from './helpers/java.js'

const execFile = promisify(execFileCb)
const skip = javaAvailable() ? false : 'java and keytool are not installed (JDK needed): Java interoperability not tested'
const TOOL = fileURLToPath(new URL('./java/JweTool.java', import.meta.url))
const softhsm = freshSoftHsm()
softhsm.initToken('javajwe')
const env = softhsm.env
let cfg
if (!skip) {
  // Java derives into a generic secret it then reads, and keytool's EC key must allow derivation.
  cfg = join(softhsm.dir, 'sunpkcs11-jwe.cfg')
  writeFileSync(
    cfg,
    [
      'name = SoftHSMjwe',
      `library = ${softhsm.module}`,
      'slotListIndex = 0',
      'attributes(generate, CKO_PRIVATE_KEY, CKK_EC) = { CKA_DERIVE = true }',
      'attributes(*, CKO_SECRET_KEY, CKK_GENERIC_SECRET) = { CKA_EXTRACTABLE = true CKA_SENSITIVE = false }',
    ].join('\n') + '\n',
  )
  // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ cfg: any; pin: string; alias: string; keyalg: string; groupname: string; env: { SOFTHSM...
  await keytoolGenKeyPair({ cfg, pin: PIN, alias: 'javaecdh', keyalg: 'EC', groupname: 'secp256r1', env })
}
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle

async function java(...args) {
  const { stdout } = await execFile('java', ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', TOOL, ...args], { env, timeout: 120_000 })
  return Buffer.from(stdout.trim(), 'hex')
}

describe('Java SunPKCS11 agrees', { skip }, () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'javajwe' }, pin: PIN })
  })
  after(() => hsm?.close())

  test('ECDH: KeyAgreement on the keytool key gives the Z we derive with it', async () => {
    const { privateKey } = await hsm.keys.get({ label: 'javaecdh' }, { algorithm: 'ECDH-ES' })
    const peer = await node.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, true, ['deriveBits'])
    const ours = Buffer.from(await hsm.subtle.deriveBits({ name: 'ECDH', public: peer.publicKey }, privateKey, null))
    const spki = Buffer.from(await node.exportKey('spki', peer.publicKey)).toString('hex')
    assert.deepEqual(await java('ecdh-p11', cfg, PIN, 'javaecdh', spki), ours)
  })

  test('AES-GCM: Java encrypts with the token key what we encrypt with it', async () => {
    const key = await hsm.subtle.importKey('raw', randomBytes(16), { name: 'AES-GCM', label: 'javaaes', persistent: true }, false, ['encrypt', 'decrypt'])
    const iv = randomBytes(12)
    const aad = randomBytes(20)
    const data = randomBytes(45)
    const ours = Buffer.from(await hsm.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: aad }, key, data))
    assert.deepEqual(await java('gcm-p11', cfg, PIN, 'javaaes', iv.toString('hex'), aad.toString('hex'), data.toString('hex')), ours)
  })
})
