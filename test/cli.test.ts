// pkcs11-jwt against a fresh SoftHSM token, run in this process through main(args, io): tables
// and JSON, sign/verify round trips for every JOSE family, JWKS, Java config, exit codes, the PIN
// kept out of messages. The built executable runs as a child process only where a process is the
// point: the built-in development token (SoftHSM reads its config when the module loads), a closed
// stdout (EPIPE), the exit status.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, test } from 'node:test'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'
import { runCli } from './helpers/cli.js'

const BIN = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
const softhsm = freshSoftHsm()
softhsm.initToken('cli')
provisionTestKeys(softhsm, 'cli')

/** The environment without any PKCS11_* variable, plus `extra`. */
function cleanEnv(extra = {}) {
  const env = { ...softhsm.env }
  for (const name of Object.keys(env)) if (name.startsWith('PKCS11_')) delete env[name]
  return { ...env, ...extra }
}

/** Runs the CLI in this process; resolves to { status, stdout, stderr }. */
function cli(args: string[], { env = cleanEnv(), input = '' } = {}) {
  return runCli(args, { env, input })
}

/** Runs the built executable in a child process; returns { status, stdout, stderr }. */
function bin(args: string[], { env = cleanEnv(), input = '' } = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], { env, input, encoding: 'utf8', timeout: 60_000 })
  if (result.error) throw result.error
  return result
}

const TOKEN = ['--module', softhsm.module, '--token', 'cli', '--pin', PIN]

/** Runs the CLI on the test token and expects success. */
async function ok(args: string[], options?: { env?: NodeJS.ProcessEnv; input?: string }) {
  // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ env?: ProcessEnv; input?: string; }' is not assignable to parameter of type '{ env?: { ...
  const result = await cli([...args, ...TOKEN], options)
  assert.equal(result.status, 0, `pkcs11-jwt ${args.join(' ')} failed: ${result.stderr}`)
  return result.stdout
}

/** Expects exit `status` and exactly one line on stderr; returns that line. */
async function fails(args: string[], status: number, options?: { env?: NodeJS.ProcessEnv; input?: string }) {
  // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ env?: ProcessEnv; input?: string; }' is not assignable to parameter of type '{ env?: { ...
  const result = await cli(args, options)
  assert.equal(result.status, status, `expected exit ${status}, got ${result.status}: ${result.stderr}`)
  const lines = result.stderr.trim().split('\n')
  assert.equal(lines.length, 1, `one stderr line expected: ${result.stderr}`)
  assert.match(lines[0], /^pkcs11-jwt: /)
  return lines[0]
}

describe('pkcs11-jwt', () => {
  test('slots: table and --json', async () => {
    const table = await ok(['slots'])
    assert.match(table.split('\n')[0], /^INDEX\s+SLOT ID\s+LABEL\s+SERIAL\s+MANUFACTURER\s+MODEL$/)
    assert.match(table, /^0\s+\d+\s+cli\s+\S+\s+SoftHSM project\s+SoftHSM v2$/m)
    const slots = JSON.parse(await ok(['slots', '--json']))
    const slot = slots.find((s) => s.token?.label === 'cli')
    assert.equal(slot.slotIndex, 0)
    assert.match(slot.slotId, /^\d+$/)
    assert.equal(slot.token.model, 'SoftHSM v2')
  })

  test('keys: table and --json', async () => {
    const table = await ok(['keys'])
    assert.match(table.split('\n')[0], /^ID\s+LABEL\s+TYPE\s+SIZE\s+CERT\s+ALGORITHMS$/)
    assert.match(table, /^01\s+rsa\s+RSA\s+2048\s+no\s+RS256,RS384,RS512,PS256,PS384,PS512$/m)
    assert.match(table, /^04\s+p521\s+EC\s+P-521\s+no\s+ES512$/m)
    assert.match(table, /^05\s+ed25519\s+OKP\s+Ed25519\s+no\s+EdDSA$/m)
    const keys = JSON.parse(await ok(['keys', '--json']))
    const byLabel = Object.fromEntries(keys.map((k) => [k.label, k]))
    assert.deepEqual(byLabel.p256, { id: '02', label: 'p256', kty: 'EC', curve: 'P-256', certificate: false, algorithms: ['ES256'] })
    assert.equal(byLabel.rsa.bits, 2048)
    assert.deepEqual(byLabel.hmac.algorithms, ['HS256', 'HS384', 'HS512'])
  })

  test('algorithms: the JOSE names the mechanisms allow', async () => {
    const names = JSON.parse(await ok(['algorithms', '--json'])).map((a) => a.alg)
    for (const alg of ['RS256', 'PS256', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256']) assert.ok(names.includes(alg), alg)
    assert.match(await ok(['algorithms']), /^ES384\s+EC\s+ECDSA\s+SHA-384\s+P-384$/m)
  })

  for (const [label, alg] of [
    ['rsa', 'RS256'],
    ['rsa', 'PS256'],
    ['p256', 'ES256'],
    ['p384', 'ES384'],
    ['p521', 'ES512'],
    ['ed25519', 'EdDSA'],
  ]) {
    test(`sign then verify: ${alg} with key ${label}`, async () => {
      const jwt = await ok(['sign', '--key', label, '--alg', alg, '--sub', 'alice', '--aud', 'api', '--exp', '1h', '--claims', '{"scope":"read"}'])
      assert.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+\n$/)
      const header = decodeProtectedHeader(jwt.trim())
      assert.equal(header.alg, alg)
      assert.match(header.kid, /^[\w-]{43}$/)
      const { header: verifiedHeader, payload } = JSON.parse(await ok(['verify', '--key', label, '--aud', 'api', jwt.trim()]))
      assert.equal(verifiedHeader.alg, alg)
      assert.equal(payload.sub, 'alice')
      assert.equal(payload.scope, 'read')
      assert.equal(payload.aud, 'api')
      assert.equal(typeof payload.iat, 'number')
      assert.equal(payload.exp - payload.iat, 3600)
    })
  }

  test('sign: alg defaults from the key; --key-id, stdin claims, --no-iat, --jti, --header', async () => {
    const jwt = await ok(['sign', '--key-id', '03', '--no-iat', '--jti', 'j1', '--iss', 'me', '--header', '{"typ":"JWT"}'], { input: '{"n":1}\n' })
    const header = decodeProtectedHeader(jwt.trim())
    assert.equal(header.alg, 'ES384')
    assert.equal(header.typ, 'JWT')
    const { payload } = JSON.parse(await ok(['verify', '--key-id', '03', '--iss', 'me'], { input: jwt }))
    assert.deepEqual(payload, { n: 1, jti: 'j1', iss: 'me' })
    assert.equal(decodeProtectedHeader((await ok(['sign', '--key', 'rsa'])).trim()).alg, 'RS256')
    assert.equal(decodeProtectedHeader((await ok(['sign', '--key', 'ed25519', '--kid', 'k1'])).trim()).kid, 'k1')
  })

  test('a JWT from sign verifies with jose against the JWKS from jwks', async () => {
    const jwks = JSON.parse(await ok(['jwks']))
    const algs = new Set(jwks.keys.map((k) => k.alg))
    for (const alg of ['ES256', 'ES384', 'ES512', 'EdDSA']) assert.ok(algs.has(alg), alg)
    // The RSA key serves RS256..PS512: published with no alg, so every one of them verifies.
    assert.deepEqual(
      jwks.keys.filter((k) => k.kty === 'RSA').map((k) => k.alg),
      [undefined],
    )
    assert.ok(jwks.keys.every((k) => k.use === 'sig' && /^[\w-]{43}$/.test(k.kid)))
    const keySet = createLocalJWKSet(jwks)
    for (const label of ['rsa', 'p256', 'ed25519']) {
      const jwt = (await ok(['sign', '--key', label, '--sub', 'bob', '--exp', '5m'])).trim()
      const { payload, protectedHeader } = await jwtVerify(jwt, keySet)
      assert.equal(payload.sub, 'bob')
      assert.ok(jwks.keys.some((k) => k.kid === protectedHeader.kid))
    }
    for (const alg of ['PS256', 'RS384', 'PS512']) {
      const jwt = (await ok(['sign', '--key', 'rsa', '--alg', alg, '--sub', 'carol'])).trim()
      assert.equal((await jwtVerify(jwt, keySet)).protectedHeader.alg, alg)
    }
    // --alg pins one algorithm: PS256 verifies against that JWKS, RS256 finds no key in it.
    const pinned = JSON.parse(await ok(['jwks', '--key', 'rsa', '--alg', 'PS256']))
    assert.deepEqual(
      pinned.keys.map((k) => [k.kty, k.alg]),
      [['RSA', 'PS256']],
    )
    const pinnedSet = createLocalJWKSet(pinned)
    await jwtVerify((await ok(['sign', '--key', 'rsa', '--alg', 'PS256'])).trim(), pinnedSet)
    await assert.rejects(jwtVerify((await ok(['sign', '--key', 'rsa', '--alg', 'RS256'])).trim(), pinnedSet), { code: 'ERR_JWKS_NO_MATCHING_KEY' })
    assert.match(await fails(['jwks', '--alg', 'PS256', ...TOKEN], 2), /--alg is for one key/)
    const one = JSON.parse(await ok(['jwks', '--key', 'p384', '--kid', 'label']))
    assert.deepEqual(
      one.keys.map((k) => [k.kid, k.alg, k.crv]),
      [['p384', 'ES384', 'P-384']],
    )

    const file = join(softhsm.dir, 'jwks.json')
    writeFileSync(file, JSON.stringify(jwks))
    const jwt = await ok(['sign', '--key', 'p521', '--exp', '1m'])
    const verified = await cli(['verify', '--jwks', file], { input: jwt })
    assert.equal(verified.status, 0, verified.stderr)
    assert.equal(JSON.parse(verified.stdout).header.alg, 'ES512')
  })

  test('--config: a Java SunPKCS11 config file', async () => {
    const config = join(softhsm.dir, 'hsm.cfg')
    writeFileSync(config, `name = X\nlibrary = ${softhsm.module}\nslotListIndex = 0\n`)
    const result = await cli(['keys', '--json', '--config', config, '--pin', PIN])
    assert.equal(result.status, 0, result.stderr)
    assert.ok(JSON.parse(result.stdout).some((k) => k.label === 'ed25519'))
    const jwt = await cli(['sign', '--config', config, '--pin', PIN, '--key', 'p256'])
    assert.equal(jwt.status, 0, jwt.stderr)
  })

  test('environment PKCS11_MODULE / PKCS11_TOKEN / PKCS11_PIN_FILE', async () => {
    const pinFile = join(softhsm.dir, 'pin.txt')
    writeFileSync(pinFile, `${PIN}\n`)
    const result = await cli(['keys', '--json'], { env: cleanEnv({ PKCS11_MODULE: softhsm.module, PKCS11_TOKEN: 'cli', PKCS11_PIN_FILE: pinFile }) })
    assert.equal(result.status, 0, result.stderr)
    assert.equal(result.stderr, '')
    assert.ok(JSON.parse(result.stdout).length >= 6)
  })

  test('exit 2: bad usage and configuration', async () => {
    assert.match(await fails(['keys', '--bogus', ...TOKEN], 2), /unknown option '--bogus'/)
    assert.match(await fails(['frobnicate'], 2), /unknown command/)
    assert.match(await fails(['sign', ...TOKEN], 2), /--key/)
    assert.match(await fails(['sign', '--key', 'p256', '--claims', '{nope', ...TOKEN], 2), /not valid JSON/)
    assert.match(await fails(['keys', '--module', softhsm.module, '--token', 'nope', '--pin', PIN], 2), /no token with label "nope"/)
    assert.match(await fails(['keys', '--module', '/nonexistent/libpkcs11.so', '--pin', PIN], 2), /not found: \/nonexistent\/libpkcs11\.so/)
    assert.match(await fails(['keys', '--token', 'cli', '--serial', 'x', '--module', softhsm.module], 2), /at most one/)
    assert.match(await fails(['sign', '--key', 'p256', '--alg', 'XX256', ...TOKEN], 2), /unknown algorithm "XX256"/)
    assert.match(await fails(['keys', '--slot-index', 'one', ...TOKEN], 2), /--slot-index/)
  })

  test('exit 1: unknown key, tampered or expired JWT, wrong issuer', async () => {
    assert.match(await fails(['sign', '--key', 'missing', ...TOKEN], 1), /no usable private or secret key on token "cli" with label "missing"/)
    const jwt = (await ok(['sign', '--key', 'p256', '--sub', 'alice'])).trim()
    const [h, p, s] = jwt.split('.')
    const forged = `${h}.${Buffer.from(JSON.stringify({ sub: 'mallory' })).toString('base64url')}.${s}`
    assert.match(await fails(['verify', '--key', 'p256', forged, ...TOKEN], 1), /signature verification failed/)
    const flipped = `${h}.${p}.${s.slice(0, -4)}${s.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`
    assert.match(await fails(['verify', '--key', 'p256', flipped, ...TOKEN], 1), /invalid token/)
    const expired = (await ok(['sign', '--key', 'p256', '--exp', '1', '--no-iat'])).trim()
    assert.match(await fails(['verify', '--key', 'p256', expired, ...TOKEN], 1), /"exp" claim/)
    assert.match(await fails(['verify', '--key', 'p256', '--iss', 'someone', jwt, ...TOKEN], 1), /"iss" claim/)
    assert.match(await fails(['verify', '--key', 'rsa', jwt, ...TOKEN], 1), /./)
    assert.match(await fails(['verify', '--key', 'p256', 'not-a-jwt', ...TOKEN], 1), /invalid token/)
  })

  test('wrong PIN: nonzero exit, one line naming CKR_PIN_INCORRECT, without the PIN', async () => {
    const wrong = '97531864'
    const result = await cli(['keys', '--module', softhsm.module, '--token', 'cli', '--pin', wrong])
    assert.notEqual(result.status, 0)
    const lines = result.stderr.trim().split('\n')
    assert.equal(lines.length, 1, result.stderr)
    assert.match(lines[0], /CKR_PIN_INCORRECT/)
    assert.ok(!result.stderr.includes(wrong))
    assert.ok(!result.stdout.includes(wrong))
    const viaUri = await cli(['sign', '--key', 'p256', '--uri', `pkcs11:token=cli?module-path=${softhsm.module}&pin-value=${wrong}`])
    assert.notEqual(viaUri.status, 0)
    assert.match(viaUri.stderr, /CKR_PIN_INCORRECT/)
    assert.ok(!viaUri.stderr.includes(wrong))
  })

  test('--help on every command shows an example', async () => {
    for (const command of ['slots', 'algorithms', 'keys', 'sign', 'verify', 'jwks']) {
      const result = await cli([command, '--help'])
      assert.equal(result.status, 0, command)
      assert.match(result.stdout, /Example:\n\s+\$ pkcs11-jwt /, command)
      assert.match(result.stdout, /--pin-file <file>/, command)
    }
    assert.match((await cli(['--help'])).stdout, /Exit status/)
  })

  test('keygen: a sensitive, non-extractable key pair with a certificate, usable at once', async () => {
    for (const [alg, label] of [
      ['ES384', 'gen-es384'],
      ['PS256', 'gen-ps256'],
      ['EdDSA', 'gen-ed'],
    ]) {
      const made = JSON.parse(await ok(['keygen', '--alg', alg, '--label', label, '--subject', `CN=${label}, O=Test`, '--days', '30', '--json']))
      assert.equal(made.label, label)
      assert.equal(made.certificate, `CN=${label}, O=Test`)
      assert.equal(made.jwk.alg, alg)
      const listed = JSON.parse(await ok(['keys', '--json'])).find((k) => k.label === label)
      assert.equal(listed.certificate, true)
      assert.ok(listed.algorithms.includes(alg))
      const objects = softhsm.pkcs11Tool(['--login', '--pin', PIN, '-O', '--label', label])
      assert.match(objects, /Private Key Object[\s\S]*Access:\s+sensitive, always sensitive, never extractable, local/)
      assert.match(objects, /Certificate Object/)
      const jwt = (await ok(['sign', '--key', label, '--alg', alg, '--sub', 'gen'])).trim()
      assert.equal(decodeProtectedHeader(jwt).alg, alg)
      assert.equal(JSON.parse(await ok(['verify', '--key', label, jwt])).payload.sub, 'gen')
    }
    assert.match(await fails(['keygen', '--alg', 'XX1', '--label', 'x', ...TOKEN], 2), /unknown algorithm "XX1"/)
    assert.match(await fails(['keygen', '--alg', 'ES256', ...TOKEN], 2), /--label/)
  })

  test('bench: ops/s and latency percentiles as JSON, no errors', async () => {
    const result = JSON.parse(await ok(['bench', '--alg', 'ES256', '--key', 'p256', '--concurrency', '4', '--duration', '1', '--json']))
    assert.equal(result.alg, 'ES256')
    assert.equal(result.concurrency, 4)
    assert.equal(result.errors, 0)
    assert.ok(result.signatures > 0 && result.opsPerSecond > 0)
    assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p99 >= result.latencyMs.p50)
    const table = await ok(['bench', '--alg', 'EdDSA', '--duration', '1'])
    assert.match(table, /^ALG\s+KEY\s+CONCURRENCY\s+OPS\/S\s+P50 MS\s+P99 MS\s+ERRORS\s+LOOP P99 MS\nEdDSA\s+/)
  })

  test('built-in development token (the executable): made on first use, announced, with keys', () => {
    const home = mkdtempSync(join(tmpdir(), 'p11wc-dev-'))
    try {
      const env = cleanEnv({ PKCS11_WEBCRYPTO_HOME: home })
      const first = bin(['keys', '--json'], { env })
      assert.equal(first.status, 0, first.stderr)
      assert.equal(first.stderr, `pkcs11-jwt: using the built-in development token (SoftHSM, software only) in ${home}\n`)
      assert.deepEqual(
        JSON.parse(first.stdout)
          .map((k) => k.label)
          .sort(),
        ['dev-eddsa', 'dev-es256', 'dev-rs256'],
      )
      assert.ok(existsSync(join(home, 'softhsm2.conf')))
      const pinFile = join(home, 'user-pin')
      assert.equal(statSync(pinFile).mode & 0o777, 0o600)
      const pin = readFileSync(pinFile, 'utf8').trim()
      const jwt = bin(['sign', '--key', 'dev-eddsa', '--sub', 'dev'], { env })
      assert.equal(jwt.status, 0, jwt.stderr)
      assert.ok(!jwt.stderr.includes(pin))
      const verified = bin(['verify', '--key', 'dev-eddsa', jwt.stdout.trim()], { env })
      assert.equal(verified.status, 0, verified.stderr)
      assert.equal(JSON.parse(verified.stdout).payload.sub, 'dev')
      // reused, not made again
      const again = bin(['keys', '--json'], { env })
      assert.equal(JSON.parse(again.stdout).length, 3)
      assert.ok(JSON.parse(again.stdout).every((k) => k.certificate))
      assert.equal(readFileSync(pinFile, 'utf8').trim(), pin)
      // the demo: a JWT for each key, verified against the token's JWKS
      const demo = bin(['demo'], { env })
      assert.equal(demo.status, 0, demo.stderr)
      for (const alg of ['RS256', 'ES256', 'EdDSA'])
        assert.match(demo.stdout, new RegExp(`^${alg} with "dev-\\w+" \\(certificate CN=dev-\\w+, O=pkcs11-webcrypto development token\\): verified, sub=alice$`, 'm'))
      assert.equal(JSON.parse(demo.stdout.slice(demo.stdout.indexOf('\n{') + 1)).keys.length, 3)
    } finally {
      rmSync(home, { recursive: true, force: true })
    }
  })

  test('the executable: exit status, and a closed stdout ends it quietly (EPIPE)', () => {
    const keys = bin(['keys', '--json', ...TOKEN])
    assert.equal(keys.status, 0, keys.stderr)
    assert.ok(JSON.parse(keys.stdout).length >= 6)
    assert.equal(bin(['keys', '--bogus']).status, 2)
    assert.equal(bin(['sign', '--key', 'missing', ...TOKEN]).status, 1)
    for (const args of [
      ['sign', '--help'],
      ['jwks', ...TOKEN],
    ]) {
      // `| true`: the reader is gone before the first write.
      const command = [process.execPath, BIN, ...args].map((word) => `'${word}'`).join(' ')
      const result = spawnSync('bash', ['-c', `${command} | true; echo "\${PIPESTATUS[0]}"`], { env: cleanEnv(), encoding: 'utf8' })
      assert.equal(result.stderr, '', `pkcs11-jwt ${args[0]}: ${result.stderr}`)
      assert.equal(result.stdout, '0\n')
    }
  })
})
