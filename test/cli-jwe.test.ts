// pkcs11-jwt encrypt / decrypt and keygen for JWE keys, the built CLI as a child process against a
// fresh SoftHSM token: keys made for every JWE kind, round trips through the CLI, JWEs from jose
// with the published public keys, a tampered JWE (exit 1), and usage errors (exit 2).
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, test } from 'node:test'
import { CompactEncrypt, base64url, importJWK } from 'jose'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const CLI = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
const softhsm = freshSoftHsm()
softhsm.initToken('cli-jwe')
const TOKEN = ['--module', softhsm.module, '--token', 'cli-jwe', '--pin', PIN]

function cli(args, input = '') {
  const result = spawnSync(process.execPath, [CLI, ...args, ...TOKEN], { env: softhsm.env, input, encoding: 'utf8', timeout: 60_000 })
  if (result.error) throw result.error
  return result
}

function ok(args: string[], input?: string) {
  const result = cli(args, input)
  assert.equal(result.status, 0, `pkcs11-jwt ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

describe('pkcs11-jwt encrypt and decrypt', () => {
  const KEYS = [
    ['RSA-OAEP', 'oaep', []],
    ['ECDH-ES', 'ec384', ['--curve', 'P-384']],
    ['ECDH-ES', 'x25519', ['--curve', 'X25519']],
    ['A256KW', 'kw', []],
    ['A128GCM', 'gcm', []],
  ]

  test('keygen makes every JWE key kind; keys and jwks show them', () => {
    for (const [alg, label, extra] of KEYS) {
      // @ts-expect-error TS2554 (converted from JavaScript): Expected 2 arguments, but got 1.
      const made = JSON.parse(ok(['keygen', '--alg', alg, '--label', label, '--json', ...extra]))
      assert.equal(made.alg, alg)
      assert.equal(made.certificate, undefined)
    }
    const listed = Object.fromEntries(JSON.parse(ok(['keys', '--json'])).map((k) => [k.label, k]))
    assert.deepEqual(listed.oaep.algorithms, ['RSA-OAEP'])
    assert.equal(listed.x25519.curve, 'X25519')
    assert.deepEqual(listed.kw.algorithms, ['A256KW'])
    assert.deepEqual(listed.gcm.algorithms, ['A128KW', 'A128GCMKW', 'A128GCM'])
    const { keys } = JSON.parse(ok(['jwks']))
    assert.ok(keys.length >= 3 && keys.every((k) => k.use === 'enc'))
  })

  for (const [alg, label, enc] of [
    ['RSA-OAEP', 'oaep', 'A256GCM'],
    ['ECDH-ES+A128KW', 'ec384', 'A128CBC-HS256'],
    ['ECDH-ES', 'x25519', 'A192GCM'],
    ['A256KW', 'kw', 'A256CBC-HS512'],
    ['A128GCMKW', 'gcm', 'A128GCM'],
    ['dir', 'gcm', undefined],
  ]) {
    test(`encrypt then decrypt: ${alg} with key ${label}`, () => {
      const jwe = ok(['encrypt', '--key', label, '--alg', alg, ...(enc ? ['--enc', enc] : []), '--sub', 'alice', '--exp', '5m']).trim()
      assert.equal(jwe.split('.').length, 5)
      const out = JSON.parse(ok(['decrypt', '--key', label], jwe))
      assert.equal(out.header.alg, alg)
      assert.equal(out.payload.sub, 'alice')
      // Tampered: exit 1, one line.
      const parts = jwe.split('.')
      const tag = base64url.decode(parts[4])
      tag[0] ^= 1
      parts[4] = base64url.encode(tag)
      const bad = cli(['decrypt', '--key', label, parts.join('.')])
      assert.equal(bad.status, 1, bad.stderr)
      assert.match(bad.stderr, /^pkcs11-jwt: it does not decrypt with key "\w+": /)
    })
  }

  test('a JWE made by jose with the published key decrypts; a plaintext that is not JSON prints as text', async () => {
    const jwk = JSON.parse(ok(['jwks'])).keys.find((k) => k.kty === 'RSA')
    const jwe = await new CompactEncrypt(new TextEncoder().encode('plain words')).setProtectedHeader({ alg: 'RSA-OAEP', enc: 'A128GCM' }).encrypt(await importJWK(jwk, 'RSA-OAEP'))
    assert.deepEqual(JSON.parse(ok(['decrypt', '--key', 'oaep', jwe])), { header: { alg: 'RSA-OAEP', enc: 'A128GCM' }, plaintext: 'plain words' })
  })

  test('usage errors: exit 2', () => {
    assert.equal(cli(['encrypt', '--key', 'kw', '--alg', 'ES256']).status, 2)
    assert.equal(cli(['encrypt', '--key', 'kw', '--alg', 'A256KW', '--enc', 'A1GCM']).status, 2)
    assert.equal(cli(['encrypt', '--key', 'gcm', '--alg', 'dir', '--enc', 'A128CBC-HS256']).status, 2)
    assert.equal(cli(['keygen', '--alg', 'A256KW', '--label', 'z', '--curve', 'P-256']).status, 2)
    assert.equal(cli(['decrypt', '--key', 'kw', 'not-a-jwe']).status, 1)
    assert.equal(cli(['decrypt', '--key', 'kw'], '').status, 2)
  })
})
