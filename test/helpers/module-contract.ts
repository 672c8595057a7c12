// The library's contract, run on a real module other than SoftHSM (test/tpm.test.js,
// test/nss.test.js): open, keys.list, the module tool's own keys signing, keys.generate with a
// certificate for each algorithm the module has, JWTs verified by Node's crypto and by the JWKS,
// 200 concurrent signs, getRandomValues, the CLI's keys and sign, close and reopen, and a wrong
// PIN tried once (C_Login counted with OpenSC's pkcs11-spy).
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { createLocalJWKSet, jwtVerify, SignJWT } from 'jose'

const SPY = ['/usr/lib/x86_64-linux-gnu/pkcs11-spy.so', '/usr/lib/aarch64-linux-gnu/pkcs11-spy.so'].find(existsSync)
const CLI = new URL('../../dist/cli/bin.js', import.meta.url).pathname
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

/** The CLI with `args`; resolves { code, stdout, stderr }. */
export function runCli(args, env = process.env) {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], { env }, (error, stdout, stderr) => resolve({ code: error ? error.code : 0, stdout, stderr }))
    child.stdin.end()
  })
}

/**
 * Registers the contract's tests.
 * - options: Pkcs11Crypto.open options; cliArgs: the same as CLI flags (without the PIN)
 * - pin; toolKeys: [{ label, alg }] made by the module's own tool; generate: JOSE algorithms to make
 * - dir: a folder for the spy's log
 */
export function moduleContract({ options, cliArgs, pin, toolKeys, generate, dir }) {
  const sign = async (hsm, label, alg) => {
    const key = await hsm.keys.get({ label }, { algorithm: alg })
    const uninstall = hsm.installGlobal()
    try {
      return { key, jwt: await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg, kid: label }).setIssuedAt().sign(key.privateKey) }
    } finally {
      uninstall()
    }
  }

  test("open, keys.list: the keys the module's own tool made, signing JWTs that Node's crypto verifies", async () => {
    const hsm = await Pkcs11Crypto.open(options)
    try {
      const listed = await hsm.keys.list()
      for (const { label, alg } of toolKeys) {
        const entry = listed.find((k) => k.label === label)
        assert.ok(entry, `${label} listed: ${JSON.stringify(listed.map((k) => k.label))}`)
        assert.ok(entry.algorithms.includes(alg), `${label}: ${entry.algorithms}`)
        const { key, jwt } = await sign(hsm, label, alg)
        const nodeKey = key.certificate ? new X509Certificate(Buffer.from(key.certificate.rawData)).publicKey : key.publicKey
        assert.equal((await jwtVerify(jwt, nodeKey)).payload.sub, 'alice')
      }
    } finally {
      await hsm.close()
    }
  })

  test('keys.generate with a certificate for each algorithm the module has; JWTs verified by the certificate and the JWKS', async () => {
    const hsm = await Pkcs11Crypto.open(options)
    try {
      const offered = hsm.algorithms()
      for (const alg of generate) {
        assert.ok(offered.includes(alg), `${alg} in ${offered}`)
        const made = await hsm.keys.generate({ algorithm: alg, label: `made-${alg}`, certificate: { subject: `CN=made-${alg}` } })
        assert.ok(made.certificate, `${alg}: a certificate`)
        const { jwt } = await sign(hsm, `made-${alg}`, alg)
        const certificateKey = new X509Certificate(Buffer.from(made.certificate.rawData)).publicKey
        assert.equal((await jwtVerify(jwt, certificateKey)).payload.sub, 'alice')
        // The JWKS names keys by thumbprint and gives the alg of a key that serves one (RSA keys: none,
        // any RS*/PS* verifies): sign again with that, or with the key's alg.
        const jwks = await hsm.jwks()
        const jwk = jwks.keys.find((k) => k.x5c?.[0] === Buffer.from(made.certificate.rawData).toString('base64'))
        assert.ok(jwk?.kid, `${alg} in the JWKS`)
        assert.equal(jwk.alg, jwk.kty === 'RSA' ? undefined : alg)
        const { key } = await sign(hsm, `made-${alg}`, jwk.alg ?? alg)
        const uninstall = hsm.installGlobal()
        const signed = await new SignJWT({ sub: 'bob' })
          .setProtectedHeader({ alg: jwk.alg ?? alg, kid: jwk.kid })
          .sign(key.privateKey)
          .finally(uninstall)
        assert.equal((await jwtVerify(signed, createLocalJWKSet(jwks))).payload.sub, 'bob')
      }
    } finally {
      await hsm.close()
    }
  })

  test('200 concurrent signs, no error; getRandomValues; close and reopen', async () => {
    const { label, alg } = toolKeys[0]
    let hsm = await Pkcs11Crypto.open(options)
    try {
      const key = await hsm.keys.get({ label }, { algorithm: alg })
      const params = key.privateKey.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : key.privateKey.algorithm
      const results = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => hsm.subtle.sign(params, key.privateKey, Buffer.from(`message ${i}`))))
      const failed = results.filter((r) => r.status === 'rejected')
      assert.equal(failed.length, 0, String(failed[0]?.reason))
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'value' does not exist on type 'PromiseSettledResult<ArrayBuffer>'.
      const verified = await Promise.all(results.map((r, i) => crypto.subtle.verify(params, key.publicKey, r.value, Buffer.from(`message ${i}`))))
      assert.ok(verified.every(Boolean))
      const random = hsm.getRandomValues(new Uint8Array(32))
      assert.notDeepEqual(random, new Uint8Array(32))
      await hsm.close()
      hsm = await Pkcs11Crypto.open(options)
      const again = await hsm.keys.get({ label }, { algorithm: alg })
      const signature = await hsm.subtle.sign(params, again.privateKey, Buffer.from('again'))
      assert.ok(await crypto.subtle.verify(params, again.publicKey, signature, Buffer.from('again')))
    } finally {
      await hsm.close()
    }
  })

  test('the CLI: keys and sign', async () => {
    const { label, alg } = toolKeys[0]
    const keys = await runCli(['keys', '--json', ...cliArgs, '--pin', pin])
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
    assert.equal(keys.code, 0, keys.stderr)
    assert.ok(
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
      JSON.parse(keys.stdout).some((k) => k.label === label),
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
      keys.stdout,
    )
    const signed = await runCli(['sign', ...cliArgs, '--pin', pin, '--key', label, '--alg', alg, '--sub', 'carol'])
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
    assert.equal(signed.code, 0, signed.stderr)
    const hsm = await Pkcs11Crypto.open(options)
    try {
      const { publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
      assert.equal((await jwtVerify(signed.stdout.trim(), publicKey)).payload.sub, 'carol')
    } finally {
      await hsm.close()
    }
  })

  test('a wrong PIN: one C_Login, CKR_PIN_INCORRECT, the PIN in no message', { skip: !SPY && 'pkcs11-spy.so not installed (apt-get install opensc)' }, async () => {
    const log = join(dir, 'spy.log')
    const wrong = 'wrong-pin-4711'
    const spied = cliArgs.map((arg) => (arg === options.library ? SPY : arg))
    const result = await runCli(['keys', ...spied, '--pin', wrong], { ...process.env, PKCS11SPY: options.library, PKCS11SPY_OUTPUT: log })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'code' does not exist on type 'unknown'.
    assert.notEqual(result.code, 0)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'stderr' does not exist on type 'unknown'.
    assert.match(result.stderr, /CKR_PIN_INCORRECT/)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'stderr' does not exist on type 'unknown'.
    assert.ok(!result.stderr.includes(wrong) && !result.stdout.includes(wrong))
    const logins = readFileSync(log, 'utf8').match(/^\d+: C_Login$/gm) ?? []
    assert.equal(logins.length, 1)
  })
}
