// Issue #13 through p11-kit (a module whose loads do not share a login across threads): decrypt,
// encrypt, unwrap and wrap go to the thread-pool fallback (dispatch/thread-pool.ts) and give what
// Node gives; a refused input is the one OperationError there too, and the token goes on. (ECDH:
// p11-kit does not pass the mechanism, which keys.get says.)
import assert from 'node:assert/strict'
import { randomBytes, webcrypto } from 'node:crypto'
import { after, before, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { CLIENT_MODULE, P11KitServer, p11KitMissing } from './helpers/p11kit.js'

const LABEL = 'remote-dec'
const missing = p11KitMissing()
const softhsm = freshSoftHsm()
softhsm.initToken(LABEL)
const server = missing ? undefined : new P11KitServer(softhsm, LABEL)
if (server) {
  await server.start()
  process.env.P11_KIT_SERVER_ADDRESS = server.address
}
const { Pkcs11Crypto, TokenCryptoKey } = await import('pkcs11-webcrypto')
const node = webcrypto.subtle
const REJECTED = { name: 'OperationError', message: 'the operation failed for an operation-specific reason' }

after(async () => {
  await server?.stopAll()
})

describe('decrypt, derive, wrap through p11-kit', { skip: missing }, () => {
  let hsm
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: CLIENT_MODULE, token: { label: LABEL }, pin: PIN })
  })
  after(() => hsm?.close())

  test('RSA-OAEP (and the AES modes p11-kit passes) equal Node; a refused input is one error; ECDH is refused at keys.get', async () => {
    const oaep = await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'oaep' })
    const ciphertext = await node.encrypt('RSA-OAEP', oaep.publicKey, Buffer.from('cek'))
    assert.equal(Buffer.from(await hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, ciphertext)).toString(), 'cek')
    const broken = Buffer.from(new Uint8Array(ciphertext))
    broken[9] ^= 1
    await assert.rejects(hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, broken), REJECTED)

    // p11-kit's RPC (0.24) does not pass CKM_ECDH1_DERIVE: said when the key is handed out.
    assert.equal(hsm.algorithms().includes('ECDH-ES'), false)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'name' does not exist on type 'unknown'.
    await assert.rejects(hsm.keys.generate({ algorithm: 'ECDH-ES', label: 'ecdh' }), (e) => e.name === 'NotSupportedError' && /no mechanism for ECDH-ES/.test(e.message))

    // What p11-kit does not pass (0.24: AES-GCM and AES-KW, whose parameters it cannot marshal)
    // is Node's: a key of an algorithm whose mechanism the token lacks is made by Node.
    const value = randomBytes(16)
    const gcm = await hsm.subtle.importKey('raw', value, 'AES-GCM', false, ['encrypt', 'decrypt'])
    assert.equal(gcm instanceof TokenCryptoKey, hsm.algorithms().includes('A128GCM'))
    const kw = await hsm.subtle.importKey('raw', value, 'AES-KW', false, ['wrapKey', 'unwrapKey'])
    assert.equal(kw instanceof TokenCryptoKey, hsm.algorithms().includes('A128KW'))
    for (const name of ['AES-CBC', 'AES-CTR']) {
      const key = await hsm.subtle.importKey('raw', value, name, false, ['encrypt', 'decrypt'])
      if (!(key instanceof TokenCryptoKey)) continue
      const params = name === 'AES-CBC' ? { name, iv: randomBytes(16) } : { name, counter: randomBytes(16), length: 64 }
      const data = randomBytes(40)
      const ours = Buffer.from(await hsm.subtle.encrypt(params, key, data))
      assert.deepEqual(ours, Buffer.from(await node.encrypt(params, await node.importKey('raw', value, name, false, ['encrypt']), data)), name)
      assert.deepEqual(Buffer.from(await hsm.subtle.decrypt(params, key, ours)), data, name)
    }
    // After the refused inputs, the token still serves.
    assert.equal(Buffer.from(await hsm.subtle.decrypt('RSA-OAEP', oaep.privateKey, ciphertext)).toString(), 'cek')
  })
})
