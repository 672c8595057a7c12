// The examples run as users run them: the Nimbus guide's flow from a Java-style hsm-config.cfg.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { createPublicKey, verify } from 'node:crypto'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const softhsm = freshSoftHsm()
softhsm.initToken('nimbus')
const { Pkcs11Crypto } = await import('../dist/index.js')

test('examples/nimbus-hsm-guide: RS256, ES256 and EdDSA keys by id, verified with their certificates', async () => {
  const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'nimbus' }, pin: PIN })
  for (const [alg, id] of [['RS256', '01'], ['ES256', '02'], ['EdDSA', '03']]) {
    await hsm.keys.generate({ algorithm: alg, id, label: `guide-${alg}`, certificate: { subject: `CN=guide-${alg}` } })
  }
  await hsm.close()
  // The guide's file, with our module and the slot index of our token.
  const config = join(softhsm.dir, 'hsm-config.cfg')
  writeFileSync(config, readFileSync(fileURLToPath(new URL('../examples/hsm-config.cfg', import.meta.url)), 'utf8')
    .replace(/^library = .*$/m, `library = ${softhsm.module}`)
    .replace(/^slotListIndex = .*$/m, 'slotListIndex = 0'))
  const example = fileURLToPath(new URL('../dist/examples/nimbus-hsm-guide.js', import.meta.url))
  const run = spawnSync(process.execPath, [example, config, '01', '02', '03'], { env: { ...softhsm.env, PKCS11_PIN: PIN }, encoding: 'utf8', timeout: 60_000 })
  assert.equal(run.status, 0, run.stderr)
  for (const alg of ['RS256', 'ES256', 'EdDSA']) {
    const [, jwt] = new RegExp(`^${alg}: (\\S+)$`, 'm').exec(run.stdout) ?? []
    assert.ok(jwt, `${alg} JWT printed`)
    const jwk = JSON.parse(new RegExp(`^${alg}: [\\s\\S]*?JWK: (.*)$`, 'm').exec(run.stdout)[1])
    // Checked again here, with Node's crypto on the printed JWK.
    const [header, payload, signature] = jwt.split('.')
    const key = createPublicKey({ key: jwk, format: 'jwk' })
    const ok = verify(alg === 'EdDSA' ? null : 'sha256', Buffer.from(`${header}.${payload}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))
    assert.ok(ok, `${alg} signature verifies with Node on the exported JWK`)
    assert.equal(JSON.parse(Buffer.from(payload, 'base64url')).sub, 'alice')
  }
})
