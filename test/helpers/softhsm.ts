// A fresh SoftHSM token store per test process, in a temp folder, and the tools to fill it.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const MODULE = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so'].find((path) =>
  existsSync(path),
)
export const PIN = '1234'
export const SO_PIN = '5678'

/**
 * Points SOFTHSM2_CONF at a new, empty token store (before any module is loaded in this process)
 * and returns helpers bound to it. The folder is removed when the process exits.
 */
export function freshSoftHsm() {
  if (!MODULE) throw new Error('SoftHSM is not installed: run scripts/install-deps.sh')
  const dir = mkdtempSync(join(tmpdir(), 'p11wc-'))
  mkdirSync(join(dir, 'tokens'))
  const conf = join(dir, 'softhsm2.conf')
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`)
  process.env.SOFTHSM2_CONF = conf
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  const env = { ...process.env, SOFTHSM2_CONF: conf }
  const run = (cmd: string, args: string[], input?: string | Buffer) => execFileSync(cmd, args, { env, input, stdio: ['pipe', 'pipe', 'pipe'] }).toString()
  return {
    dir,
    conf,
    env,
    module: MODULE,
    /** Initializes a token in the next free slot. */
    initToken(label, pin = PIN) {
      run('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', SO_PIN])
    },
    /** Imports a PKCS#8 PEM private key (and its public key) with softhsm2-util. */
    importKey(token, pem, { label, id }, pin = PIN) {
      const file = join(dir, `import-${label}.pem`)
      writeFileSync(file, pem)
      run('softhsm2-util', ['--import', file, '--token', token, '--label', label, '--id', id, '--pin', pin])
      rmSync(file)
    },
    /** Runs OpenSC's pkcs11-tool on this store. */
    pkcs11Tool(args: string[], input?: string | Buffer) {
      return run('pkcs11-tool', ['--module', MODULE, ...args], input)
    },
  }
}
