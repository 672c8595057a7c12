// scripts/install-deps.sh, as `npm test` and `npm run demo` run it: nothing when all is present
// (no apt call), the exact apt-get command and exit 2 when not root, apt-get when root. dpkg-query,
// id and apt-get are stand-ins on PATH that record their calls, so nothing is installed here.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { after, test } from 'node:test'

const SCRIPT = fileURLToPath(new URL('../scripts/install-deps.sh', import.meta.url))
const bin = mkdtempSync(join(tmpdir(), 'install-deps-'))
after(() => rmSync(bin, { recursive: true, force: true }))
const log = join(bin, 'calls.log')

function tool(name, body) {
  writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> "${log}"\n${body}\n`)
  chmodSync(join(bin, name), 0o755)
}

/** Runs the script with `installed` packages present and user id `uid`. */
function run(profile, { installed, uid }) {
  rmSync(log, { force: true })
  tool('dpkg-query', `case " ${installed.join(' ')} " in *" $3 "*) printf 'install ok installed';; *) exit 1;; esac`)
  tool('id', `echo ${uid}`)
  tool('apt-get', 'exit 0')
  const result = spawnSync('bash', [SCRIPT, ...(profile ? [profile] : [])], { env: { PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' })
  const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : []
  return { ...result, apt: calls.filter((line) => line.startsWith('apt-get')) }
}

const ALL = [
  'softhsm2',
  'opensc',
  'opensc-pkcs11',
  'p11-kit',
  'p11-kit-modules',
  'libengine-pkcs11-openssl',
  'gnutls-bin',
  'openssl',
  'build-essential',
  'python3',
  'libtpm2-pkcs11-1',
  'tpm2-tools',
  'libtpm2-pkcs11-tools',
  'swtpm',
  'swtpm-tools',
  'tpm2-abrmd',
  'libtss2-tcti-tabrmd0',
  'dbus',
  'libnss3',
  'libnss3-tools',
  'openjdk-17-jdk-headless',
  'procps',
]

test('all present: exit 0, no apt call, nothing printed', () => {
  for (const uid of [0, 1000]) {
    const result = run(undefined, { installed: ALL, uid })
    assert.equal(result.status, 0, result.stderr)
    assert.deepEqual(result.apt, [])
    assert.equal(result.stdout + result.stderr, '')
  }
})

test('demo needs only SoftHSM', () => {
  const result = run('demo', { installed: ['softhsm2'], uid: 1000 })
  assert.equal(result.status, 0, result.stderr)
  assert.deepEqual(result.apt, [])
})

test('not root and something missing: the exact apt-get command, exit 2, no apt call', () => {
  const result = run('test', { installed: ALL.filter((p) => p !== 'softhsm2' && p !== 'procps'), uid: 1000 })
  assert.equal(result.status, 2)
  assert.deepEqual(result.apt, [])
  assert.match(result.stderr, /^ {2}sudo apt-get update && sudo apt-get install -y --no-install-recommends softhsm2 procps$/m)
  const demo = run('demo', { installed: [], uid: 1000 })
  assert.equal(demo.status, 2)
  assert.match(demo.stderr, /sudo apt-get install -y --no-install-recommends softhsm2$/m)
})

test('root and something missing: apt-get installs just that', () => {
  const result = run('test', { installed: ALL.filter((p) => p !== 'gnutls-bin'), uid: 0 })
  assert.equal(result.status, 0, result.stderr)
  assert.deepEqual(result.apt, ['apt-get update -qq', 'apt-get install -y -qq --no-install-recommends gnutls-bin'])
})

test('an unknown profile is a usage error', () => {
  assert.equal(run('everything', { installed: ALL, uid: 0 }).status, 2)
})
