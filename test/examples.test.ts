// The examples run as users run them: the Nimbus guide's flow from a Java-style hsm-config.cfg,
// and a signing service with a process per core.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'node:test'
import { createPublicKey, verify } from 'node:crypto'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const SPY = ['/usr/lib/x86_64-linux-gnu/pkcs11-spy.so', '/usr/lib/aarch64-linux-gnu/pkcs11-spy.so'].find(existsSync)
const softhsm = freshSoftHsm()
softhsm.initToken('nimbus')
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

test('examples/nimbus-hsm-guide: RS256, ES256 and EdDSA keys by id, verified with their certificates', async () => {
  const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'nimbus' }, pin: PIN })
  for (const [alg, id] of [
    ['RS256', '01'],
    ['ES256', '02'],
    ['EdDSA', '03'],
  ]) {
    await hsm.keys.generate({ algorithm: alg, id, label: `guide-${alg}`, certificate: { subject: `CN=guide-${alg}` } })
  }
  await hsm.close()
  // The guide's file, with our module and the slot index of our token.
  const config = join(softhsm.dir, 'hsm-config.cfg')
  writeFileSync(
    config,
    readFileSync(fileURLToPath(new URL('../examples/hsm-config.cfg', import.meta.url)), 'utf8')
      .replace(/^library = .*$/m, `library = ${softhsm.module}`)
      .replace(/^slotListIndex = .*$/m, 'slotListIndex = 0'),
  )
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
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'Buffer<ArrayBuffer>' is not assignable to parameter of type 'string'.
    assert.equal(JSON.parse(Buffer.from(payload, 'base64url')).sub, 'alice')
  }
})

/**
 * The service's token and key, made once the Nimbus test is done: its config names its token by
 * slot index 0, which a second token could take.
 */
let serviceTokenMade = false
function makeServiceToken() {
  if (serviceTokenMade) return
  softhsm.initToken('service')
  softhsm.pkcs11Tool(['--token-label', 'service', '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'service-key', '--id', '51'])
  serviceTokenMade = true
}

/**
 * Starts the cluster example on a free port with `pin` (and more `env`); resolves once every
 * process serves, or it exited.
 */
async function startService(pin, env = {}) {
  makeServiceToken()
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'port' does not exist on type 'string | AddressInfo'.
  const { port } = probe.address()
  probe.close()
  const example = fileURLToPath(new URL('../dist/examples/cluster-signing-service.js', import.meta.url))
  const service = spawn(process.execPath, [example, String(port), 'service-key', 'ES256'], {
    env: { ...softhsm.env, PKCS11_MODULE: softhsm.module, PKCS11_TOKEN: 'service', PKCS11_PIN: pin, SIGNING_PROCESSES: '2', ...env },
  })
  let stdout = ''
  let stderr = ''
  service.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = once(service, 'exit')
  await new Promise((resolve) => {
    service.stdout.on('data', (chunk) => {
      stdout += chunk
      // @ts-expect-error TS2794 (converted from JavaScript): Expected 1 arguments, but got 0. Did you forget to include 'void' in your type argument to 'Promise'?
      if (stdout.includes('listening on')) resolve()
    })
    void exited.then(resolve)
  })
  return { url: `http://127.0.0.1:${port}`, service, exited, output: () => ({ stdout, stderr }) }
}

test('examples/cluster-signing-service: two processes sign ES256 JWTs that verify against its JWKS', { timeout: 60_000 }, async () => {
  const { url, service, exited, output } = await startService(PIN)
  try {
    assert.match(output().stdout, /listening on .* with 2 processes/, output().stderr)
    const {
      keys: [jwk],
    } = await (await fetch(`${url}/jwks`)).json()
    const publicKey = createPublicKey({ key: jwk, format: 'jwk' })
    const replies = await Promise.all(Array.from({ length: 64 }, (_, n) => fetch(`${url}/token`, { method: 'POST', body: JSON.stringify({ sub: 'alice', n }) })))
    const signers = new Set()
    for (const [n, reply] of replies.entries()) {
      assert.equal(reply.status, 200)
      signers.add(reply.headers.get('x-signed-by'))
      // Checked with Node's crypto on the published JWK, not with jose, which made the token.
      const [header, payload, signature] = (await reply.text()).split('.')
      // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'Buffer<ArrayBuffer>' is not assignable to parameter of type 'string'.
      assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url')), { alg: 'ES256', kid: jwk.kid })
      // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'Buffer<ArrayBuffer>' is not assignable to parameter of type 'string'.
      assert.equal(JSON.parse(Buffer.from(payload, 'base64url')).n, n)
      assert.ok(verify('sha256', Buffer.from(`${header}.${payload}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url')))
    }
    assert.equal(signers.size, 2, 'both processes signed')
    const bad = await fetch(`${url}/token`, { method: 'POST', body: '[1, 2]' })
    assert.equal(bad.status, 400)
    assert.match(await bad.text(), /JSON object/)
  } finally {
    service.kill('SIGTERM')
    const [code] = await exited
    assert.equal(code, 0, output().stderr)
  }
})

test('examples/cluster-signing-service: a wrong PIN is tried once, and no signing process starts', { timeout: 30_000, skip: !SPY && 'pkcs11-spy.so not installed' }, async () => {
  const wrongPin = '987654'
  const log = join(softhsm.dir, 'service-spy.log')
  // OpenSC's pkcs11-spy between the service and SoftHSM logs every call, C_Login among them.
  const { exited, output } = await startService(wrongPin, { PKCS11_MODULE: SPY, PKCS11SPY: softhsm.module, PKCS11SPY_OUTPUT: log })
  const [code] = await exited
  assert.equal(code, 1)
  const { stdout, stderr } = output()
  assert.match(stderr, /CKR_PIN_INCORRECT/)
  assert.doesNotMatch(stdout + stderr, new RegExp(wrongPin))
  assert.doesNotMatch(stdout + stderr, /listening|process \d+ ended/)
  const logins = readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => /^\d+: C_Login$/.test(line.trim()))
  assert.equal(logins.length, 1, `C_Login calls: ${logins.join(' | ')}`)
})
