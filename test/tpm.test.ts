// The library on a TPM 2.0 token: tpm2-pkcs11 over a software TPM (swtpm + tpm2-abrmd), made from
// nothing per run (test/helpers/tpm.js). Skipped, saying why, only where the stack is not installed.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { after, before, describe, test } from 'node:test'
import { startTpm, tpmMissing, TPM_MODULE } from './helpers/tpm.js'

const missing = tpmMissing()
const PIN = '1234'

describe('tpm2-pkcs11 on a software TPM', { skip: missing && `TPM stack not installed: ${missing}` }, async () => {
  const { moduleContract } = await import('./helpers/module-contract.js')
  const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
  const tpm = missing ? undefined : await startTpm()
  const options = { library: TPM_MODULE, token: { label: 'tpm' }, pin: PIN }
  before(() => {
    tpm.addToken('tpm', PIN)
    tpm.addKey('tpm', PIN, { label: 'ptool-ec', id: '01', algorithm: 'ecc256' })
    tpm.addKey('tpm', PIN, { label: 'ptool-rsa', id: '02', algorithm: 'rsa2048' })
    execFileSync(
      'pkcs11-tool',
      ['--module', TPM_MODULE, '--token-label', 'tpm', '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'p11tool-ec', '--id', '03'],
      { stdio: 'ignore' },
    )
    execFileSync(
      'pkcs11-tool',
      ['--module', TPM_MODULE, '--token-label', 'tpm', '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:secp521r1', '--label', 'p11tool-p521', '--id', '04'],
      { stdio: 'ignore' },
    )
  })
  after(() => tpm?.stop())

  moduleContract({
    options,
    cliArgs: ['--module', TPM_MODULE, '--token', 'tpm'],
    pin: PIN,
    toolKeys: [
      { label: 'ptool-ec', alg: 'ES256' },
      { label: 'ptool-rsa', alg: 'PS256' },
      { label: 'p11tool-ec', alg: 'ES256' },
    ],
    generate: ['ES256', 'ES384', 'RS256'],
    dir: tpm?.dir,
  })

  test('pkcs11-jwt slots: token strings without their NUL padding', async () => {
    const { runCli } = await import('./helpers/module-contract.js')
    const result = await runCli(['slots', '--json', '--module', TPM_MODULE])
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
    assert.equal(result.code, 0, result.stderr)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
    const tokens = JSON.parse(result.stdout)
      .map((slot) => slot.token)
      .filter(Boolean)
    assert.ok(
      tokens.some((token) => token.label === 'tpm' && token.model === 'SW   TPM'),
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
      result.stdout,
    )
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
    assert.ok(!result.stdout.includes('\\u0000'))
  })

  test('what the TPM cannot do is said, not tried: no P-521, no EdDSA, no session keys', async () => {
    const hsm = await Pkcs11Crypto.open(options)
    try {
      const offered = hsm.algorithms()
      assert.ok(!offered.includes('ES512') && !offered.includes('EdDSA'), String(offered))
      await assert.rejects(hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']), {
        name: 'NotSupportedError',
        message: /keeps no session objects: make the key with persistent: true/,
      })
      await assert.rejects(hsm.keys.generate({ algorithm: 'ES512', label: 'p521' }), { name: 'NotSupportedError', message: /P-521/ })
      const listed = await hsm.keys.list()
      assert.ok(!listed.some((k) => k.label === 'p521'), 'nothing left behind')
      // One made by another tool is listed, with no algorithm to sign with.
      assert.deepEqual(listed.find((k) => k.label === 'p11tool-p521')?.algorithms, [])
      // A token object works, and goes when deleted.
      // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
      await hsm.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256', label: 'persistent', persistent: true }, false, ['sign', 'verify'])
      assert.ok((await hsm.keys.delete({ label: 'persistent' })) >= 2)
      assert.equal(hsm.token.model, 'SW   TPM', 'the model without its NUL padding')
    } finally {
      await hsm.close()
    }
  })
})
