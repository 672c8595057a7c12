// A fresh SoftHSM token for one benchmark run, in a temp folder (SOFTHSM2_CONF), with keys made by
// tools we did not write: OpenSC's pkcs11-tool (RSA-2048, P-256, Ed25519) for the Node contenders,
// and Java's keytool (RSA-2048 and P-256, each with a certificate) for SunPKCS11, which only sees a
// private key that has a certificate beside it.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const MODULE = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so', '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so']
  .find((path) => existsSync(path))

const LABEL = 'bench'
const PIN = '1234'
const SO_PIN = '5678'

/** Token keys per JOSE alg: the pkcs11-tool label (Node contenders) and the keytool alias (Java). */
export const KEYS = {
  RS256: { label: 'rsa2048', id: '01', javaAlias: 'java-rsa' },
  PS256: { label: 'rsa2048', id: '01', javaAlias: 'java-rsa' },
  ES256: { label: 'p256', id: '02', javaAlias: 'java-ec' },
  EdDSA: { label: 'ed25519', id: '03', javaAlias: undefined }, // SunPKCS11 in JDK 17 has no EdDSA
}

/** True when a command can be run. */
function hasCommand(cmd, args = ['-version']) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Makes the token and its keys; returns what contenders need (plain data, sent to child processes)
 * and a `remove()` that deletes the folder.
 */
export function createBenchToken({ java = hasCommand('java') && hasCommand('keytool', ['-help']) } = {}) {
  if (!MODULE) throw new Error('SoftHSM is not installed: run scripts/install-deps.sh')
  const dir = mkdtempSync(join(tmpdir(), 'p11bench-'))
  mkdirSync(join(dir, 'tokens'))
  const conf = join(dir, 'softhsm2.conf')
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`)
  const env = { ...process.env, SOFTHSM2_CONF: conf }
  const run = (cmd, args) => execFileSync(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] }).toString()
  const pkcs11Tool = (...args) => run('pkcs11-tool', ['--module', MODULE, '--token-label', LABEL, '--login', '--pin', PIN, ...args])

  let javaConfig
  try {
    run('softhsm2-util', ['--init-token', '--free', '--label', LABEL, '--pin', PIN, '--so-pin', SO_PIN])
    pkcs11Tool('--keypairgen', '--key-type', 'rsa:2048', '--label', KEYS.RS256.label, '--id', KEYS.RS256.id)
    pkcs11Tool('--keypairgen', '--key-type', 'EC:prime256v1', '--label', KEYS.ES256.label, '--id', KEYS.ES256.id)
    pkcs11Tool('--keypairgen', '--key-type', 'EC:edwards25519', '--label', KEYS.EdDSA.label, '--id', KEYS.EdDSA.id)

    // SoftHSM's slot ids are not stable: name the slot by the id it has now, for Java's config.
    const slotId = /Slot \d+ \(0x([0-9a-f]+)\)[^\n]*\n(?:[^\n]*\n)*?\s*token label\s*:\s*bench\b/i.exec(run('pkcs11-tool', ['--module', MODULE, '--list-slots']))
    if (java && slotId) {
      javaConfig = join(dir, 'sunpkcs11.cfg')
      writeFileSync(javaConfig, `name = SoftHSM\nlibrary = ${MODULE}\nslot = ${parseInt(slotId[1], 16)}\n`)
      const keytool = (alias, ...args) => run('keytool', ['-genkeypair', '-noprompt', '-storetype', 'PKCS11',
        '-providerClass', 'sun.security.pkcs11.SunPKCS11', '-providerArg', javaConfig, '-storepass', PIN,
        '-alias', alias, '-dname', `CN=${alias}`, '-validity', '3650', ...args])
      keytool(KEYS.RS256.javaAlias, '-keyalg', 'RSA', '-keysize', '2048', '-sigalg', 'SHA256withRSA')
      keytool(KEYS.ES256.javaAlias, '-keyalg', 'EC', '-groupname', 'secp256r1', '-sigalg', 'SHA256withECDSA')
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true })
    throw error
  }

  return {
    token: { dir, conf, module: MODULE, label: LABEL, pin: PIN, javaConfig },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  }
}
