// NSS's softokn with a database made from nothing in a temp folder by certutil (libnss3-tools):
// the token "NSS Certificate DB", keys made by certutil with self-signed certificates.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const SOFTOKN = ['/usr/lib/x86_64-linux-gnu/libsoftokn3.so', '/usr/lib/aarch64-linux-gnu/libsoftokn3.so', '/usr/lib64/libsoftokn3.so'].find((path) => existsSync(path))

/** Why the NSS tests cannot run here, or undefined when they can. */
export function nssMissing() {
  if (!SOFTOKN) return 'libsoftokn3.so not found (apt-get install libnss3)'
  try {
    execFileSync('sh', ['-c', 'command -v certutil'], { stdio: 'ignore' })
  } catch {
    return 'certutil not found (apt-get install libnss3-tools)'
  }
  return undefined
}

/** A new NSS database with `password`; `libraryParameters` open it with softokn. */
export function freshNssDb(password) {
  const dir = mkdtempSync(join(tmpdir(), 'p11wc-nss-'))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const db = join(dir, 'db')
  mkdirSync(db)
  const passwordFile = join(dir, 'password')
  writeFileSync(passwordFile, `${password}\n`)
  const noise = join(dir, 'noise')
  writeFileSync(noise, randomBytes(64))
  const certutil = (...args) => execFileSync('certutil', ['-d', `sql:${db}`, '-f', passwordFile, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  certutil('-N')
  return {
    dir,
    db,
    module: SOFTOKN,
    libraryParameters: `configdir='sql:${db}' certPrefix='' keyPrefix='' secmod='secmod.db' flags=`,
    /** A key with a self-signed certificate, made by certutil: `-k rsa -g 2048` or `-k ec -q nistp256`. */
    addKey(nickname, keyArgs) {
      certutil('-S', '-n', nickname, '-s', `CN=${nickname}`, '-x', '-t', 'u,u,u', '-z', noise, ...keyArgs)
    },
  }
}
