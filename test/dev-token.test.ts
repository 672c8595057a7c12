// The CLI's development token touches only what it made: a folder holding anything else (another
// SoftHSM store) is refused and left as it was; concurrent first runs make one token with one key
// each; its PINs never appear on a command line (no softhsm2-util is run at all).
import assert from 'node:assert/strict'
import { spawn, spawnSync, execFileSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const CLI = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
const RAW = fileURLToPath(new URL('./helpers/raw-attributes.cjs', import.meta.url))
const softhsm = freshSoftHsm()
const homes = []
after(() => homes.forEach((home) => rmSync(home, { recursive: true, force: true })))

/** A folder, and a PATH whose softhsm2-util only records that it ran (with its arguments). */
function setup() {
  const root = mkdtempSync(join(tmpdir(), 'p11wc-devtok-'))
  homes.push(root)
  const bin = join(root, 'bin')
  mkdirSync(bin)
  const record = join(root, 'softhsm2-util-ran')
  writeFileSync(join(bin, 'softhsm2-util'), `#!/bin/sh\necho "$@" >> ${record}\nexit 1\n`)
  chmodSync(join(bin, 'softhsm2-util'), 0o755)
  const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, PKCS11_WEBCRYPTO_HOME: join(root, 'home') }
  for (const name of Object.keys(env)) if (name.startsWith('PKCS11_') && name !== 'PKCS11_WEBCRYPTO_HOME') delete env[name]
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'SOFTHSM2_CONF' does not exist on type '{ PATH: string; PKCS11_WEBCRYPTO_HOME: string; }'.
  delete env.SOFTHSM2_CONF
  return { home: env.PKCS11_WEBCRYPTO_HOME, env, record }
}

/** The objects of the development token in `home`, read by the raw binding in another process. */
function devObjects(home) {
  const env = { ...process.env, SOFTHSM2_CONF: join(home, 'softhsm2.conf') }
  const pin = readFileSync(join(home, 'user-pin'), 'utf8').trim()
  return JSON.parse(execFileSync(process.execPath, [RAW, softhsm.module, 'dev', pin, '*'], { env }).toString())
}

function run(env, args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
    })
    child.stderr.on('data', (d) => {
      stderr += d
    })
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

describe('the development token', () => {
  test('a folder holding another SoftHSM store is refused and left untouched', () => {
    const { home, env } = setup()
    mkdirSync(join(home, 'tokens'), { recursive: true })
    const conf = `directories.tokendir = ${join(home, 'tokens')}\nobjectstore.backend = file\n`
    writeFileSync(join(home, 'softhsm2.conf'), conf)
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'precious', '--pin', PIN, '--so-pin', '5678'], {
      env: { ...process.env, SOFTHSM2_CONF: join(home, 'softhsm2.conf') },
      stdio: 'pipe',
    })
    const before = readdirSync(join(home, 'tokens'))
    const result = spawnSync(process.execPath, [CLI, 'slots'], { env, encoding: 'utf8' })
    assert.equal(result.status, 2, result.stderr)
    assert.match(result.stderr, /holds files the development token did not make \(.*softhsm2\.conf.*\); point PKCS11_WEBCRYPTO_HOME at an empty or new folder/)
    assert.deepEqual(readdirSync(home).sort(), ['softhsm2.conf', 'tokens'])
    assert.equal(readFileSync(join(home, 'softhsm2.conf'), 'utf8'), conf)
    assert.deepEqual(readdirSync(join(home, 'tokens')), before)
  })

  test('three concurrent first runs: one token, one key of each label, no softhsm2-util run', async () => {
    const { home, env, record } = setup()
    const results = await Promise.all([1, 2, 3].map(() => run(env, ['keys', '--json'])))
    for (const r of results) {
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'status' does not exist on type 'unknown'.
      assert.equal(r.status, 0, r.stderr)
      assert.deepEqual(
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
        JSON.parse(r.stdout)
          .map((k) => k.label)
          .sort(),
        ['dev-eddsa', 'dev-es256', 'dev-rs256'],
      )
    }
    const slots = execFileSync('softhsm2-util', ['--show-slots'], { env: { ...process.env, SOFTHSM2_CONF: join(home, 'softhsm2.conf') } }).toString()
    assert.equal(slots.match(/Label:\s+dev\b/g)?.length, 1, slots)
    const objects = devObjects(home)
    for (const label of ['dev-rs256', 'dev-es256', 'dev-eddsa']) {
      assert.equal(objects.filter((o) => o.label === label && o.class === 'private').length, 1, label)
      assert.equal(objects.filter((o) => o.label === label && o.class === 'certificate').length, 1, label)
    }
    assert.equal(existsSync(record), false, 'softhsm2-util was run (PINs on its command line)')
    assert.equal(existsSync(join(home, '.lock')), false, 'the lock is released')
    assert.equal(JSON.parse(readFileSync(join(home, 'pkcs11-webcrypto-dev-token.json'), 'utf8')).complete, true)
  })

  test('an interrupted first run (marker, no PIN file) is finished, in its own folder only', async () => {
    const { home, env } = setup()
    mkdirSync(join(home, 'tokens'), { recursive: true })
    writeFileSync(join(home, 'pkcs11-webcrypto-dev-token.json'), '{"tool":"pkcs11-webcrypto","complete":false}\n')
    const result = await run(env, ['keys', '--json'])
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'status' does not exist on type 'unknown'.
    assert.equal(result.status, 0, result.stderr)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'stdout' does not exist on type 'unknown'.
    assert.equal(JSON.parse(result.stdout).length, 3)
  })
})
