// The library on NSS's softokn (libsoftokn3.so), with a database certutil made per run: it needs
// C_Initialize library parameters, from the open option, the CLI flag, a Java config (nssArgs, or
// NSS mode as SunPKCS11 reads it) or a URI. Skipped, saying why, only where NSS is not installed.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { freshNssDb, nssMissing, SOFTOKN } from './helpers/nss.js'

const missing = nssMissing()
const PIN = 'nss-password-1'

describe('NSS softokn', { skip: missing && `NSS not installed: ${missing}` }, async () => {
  const { moduleContract, runCli } = await import('./helpers/module-contract.js')
  const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
  const nss = missing ? undefined : freshNssDb(PIN)
  nss?.addKey('nss-rsa', ['-k', 'rsa', '-g', '2048'])
  nss?.addKey('nss-ec', ['-k', 'ec', '-q', 'nistp256'])
  const options = { library: SOFTOKN, libraryParameters: nss?.libraryParameters, token: { label: 'NSS Certificate DB' }, pin: PIN }

  moduleContract({
    options,
    cliArgs: ['--module', SOFTOKN, '--library-parameters', nss?.libraryParameters, '--token', 'NSS Certificate DB'],
    pin: PIN,
    toolKeys: [
      { label: 'nss-ec', alg: 'ES256' },
      { label: 'nss-rsa', alg: 'RS256' },
    ],
    generate: ['ES256', 'ES384', 'ES512', 'RS256', 'PS256'],
    dir: nss?.dir,
  })

  test('without library parameters: CKR_ARGUMENTS_BAD, and a hint', async () => {
    const result = await runCli(['slots', '--module', SOFTOKN])
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
    assert.equal(result.code, 1, result.stderr)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'stderr' does not exist on type 'unknown'.
    assert.match(result.stderr, /C_Initialize failed: CKR_ARGUMENTS_BAD \(the module may need libraryParameters, as NSS's softokn does\)/)
  })

  test('a Java SunPKCS11 config opens it: nssArgs with library, or NSS mode (nssSecmodDirectory, nssModule)', async () => {
    const withArgs = join(nss.dir, 'args.cfg')
    writeFileSync(withArgs, `name = NSS\nlibrary = ${SOFTOKN}\nnssArgs = "${nss.libraryParameters}"\nslot = 2\n`)
    const nssMode = join(nss.dir, 'nss-mode.cfg')
    writeFileSync(nssMode, `name = NSS\nnssLibraryDirectory = ${SOFTOKN.replace(/\/[^/]+$/, '')}\nnssSecmodDirectory = ${nss.db}\nnssDbMode = readOnly\nnssModule = keystore\n`)
    for (const config of [withArgs, nssMode]) {
      const hsm = await Pkcs11Crypto.open({ config, pin: PIN })
      try {
        assert.equal(hsm.token.label, 'NSS Certificate DB')
        assert.ok((await hsm.keys.list()).some((k) => k.label === 'nss-ec'))
      } finally {
        await hsm.close()
      }
    }
    const uri = `pkcs11:token=NSS%20Certificate%20DB?module-path=${SOFTOKN}&x-library-parameters=${encodeURIComponent(nss.libraryParameters)}&pin-value=${PIN}`
    const hsm = await Pkcs11Crypto.open({ uri })
    await hsm.close()
  })

  test('one module, one C_Initialize: other parameters while it is open fail, naming neither', async () => {
    const hsm = await Pkcs11Crypto.open(options)
    try {
      const other = `${nss.libraryParameters.replace(/flags=$/, 'flags=readOnly')}`
      await assert.rejects(Pkcs11Crypto.open({ ...options, libraryParameters: other }), (error) => {
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
        assert.equal(error.code, 'ERR_PKCS11_CONFIG')
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'message' does not exist on type 'unknown'.
        assert.match(error.message, /already initialized in this process with other library parameters/)
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'message' does not exist on type 'unknown'.
        assert.ok(!error.message.includes('configdir'), error.message)
        return true
      })
    } finally {
      await hsm.close()
    }
  })

  test('Java NSS-mode keys SunPKCS11 has and we do not: refused with the reason', async () => {
    for (const [line, message] of [
      ['nssModule = fips', /nssModule "fips" is not supported/],
      ['nssDbMode = sometimes', /nssDbMode must be/],
      ['nssModule = keystore\nnssDbMode = noDb', /keystore needs nssSecmodDirectory/],
    ]) {
      const config = join(nss.dir, 'bad.cfg')
      writeFileSync(config, `name = NSS\nnssSecmodDirectory = ${nss.db}\n${line}\n`)
      await assert.rejects(Pkcs11Crypto.open({ config, pin: PIN }), { code: 'ERR_PKCS11_CONFIG', message })
    }
  })
})
