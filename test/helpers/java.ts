// Test helpers that cross-check our JWS/PKCS#11 output with the JDK (test/java/JwsTool.java,
// run through Java's single-file source launcher) and drive keytool against a PKCS#11 token.
import { execFile as execFileCb, execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const execFile = promisify(execFileCb)
const TOOL = fileURLToPath(new URL('../java/JwsTool.java', import.meta.url))
const TIMEOUT = 120_000
// Short-lived JVM: skipping C2 and using the serial GC cuts ~30% off each run.
const JAVA = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', TOOL]

let available
/** True when both `java` and `keytool` can be run. */
export function javaAvailable() {
  if (available === undefined) {
    try {
      execFileSync('java', ['-version'], { stdio: 'ignore' })
      execFileSync('keytool', ['-help'], { stdio: 'ignore' })
      available = true
    } catch {
      available = false
    }
  }
  return available
}

/** Writes a SunPKCS11 config file into `dir` and returns its path. */
export function writeSunPkcs11Config(dir, { library, slot, slotListIndex, name = 'SoftHSM' }) {
  if (slot !== undefined && slotListIndex !== undefined) {
    throw new Error('give either slot or slotListIndex, not both')
  }
  // The SunPKCS11 config tokenizer splits on whitespace unless the value is quoted.
  const lib = /\s/.test(library) ? `"${library}"` : library
  const lines = [`name = ${name}`, `library = ${lib}`]
  if (slot !== undefined) lines.push(`slot = ${slot}`)
  if (slotListIndex !== undefined) lines.push(`slotListIndex = ${slotListIndex}`)
  const file = join(dir, `sunpkcs11-${name}.cfg`)
  writeFileSync(file, lines.join('\n') + '\n')
  return file
}

function childEnv(env) {
  return env ? { ...process.env, ...env } : process.env
}

function failure(what, err) {
  // keytool reports its errors ("keytool error: ...") on stdout, JwsTool on stderr.
  const detail =
    [err.stderr, err.stdout]
      .map((s) => (s || '').trim())
      .filter(Boolean)
      .join('\n') || err.message
  return new Error(`${what} failed (exit ${err.code}): ${detail}`)
}

/** Generates a key pair plus self-signed certificate on the token with keytool. */
export async function keytoolGenKeyPair({ cfg, pin, alias, keyalg, keysize, groupname, sigalg, dname, env }) {
  const args = [
    '-genkeypair',
    '-noprompt',
    '-storetype',
    'PKCS11',
    '-providerClass',
    'sun.security.pkcs11.SunPKCS11',
    '-providerArg',
    cfg,
    '-storepass',
    pin,
    '-alias',
    alias,
    '-keyalg',
    keyalg,
    '-dname',
    dname ?? `CN=${alias}`,
    '-validity',
    '3650',
  ]
  if (keysize !== undefined) args.push('-keysize', String(keysize))
  if (groupname !== undefined) args.push('-groupname', groupname)
  if (sigalg !== undefined) args.push('-sigalg', sigalg)
  try {
    await execFile('keytool', args, { env: childEnv(env), timeout: TIMEOUT })
  } catch (err) {
    throw failure(`keytool -genkeypair ${alias}`, err)
  }
}

// Runs JwsTool; true on exit 0, false on exit 1 with "invalid" on stdout, throws otherwise.
async function runVerify(args, env) {
  try {
    await execFile('java', [...JAVA, ...args], { env: childEnv(env), timeout: TIMEOUT })
    return true
  } catch (err) {
    if (err.code === 1 && err.stdout?.trim() === 'invalid') return false
    throw failure(`JwsTool ${args[0]}`, err)
  }
}

async function withTempDir(fn) {
  const dir = await mkdtemp(join(tmpdir(), 'jwstool-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Verifies a compact JWS with java.security.Signature and the given SPKI PEM. */
export async function javaVerify(alg, spkiPem, jws, env) {
  return withTempDir(async (dir) => {
    const pem = join(dir, 'pub.pem')
    await writeFile(pem, spkiPem)
    return runVerify(['verify', alg, pem, jws], env)
  })
}

/** Verifies many JWS in one JVM run: [{ alg, spkiPem, jws }] -> boolean[] in the same order. */
export async function javaVerifyMany(items, env) {
  if (items.length === 0) return []
  return withTempDir(async (dir) => {
    const pemFiles = new Map() // one file per distinct PEM
    const lines = []
    for (const { alg, spkiPem, jws } of items) {
      if (/[\t\r\n]/.test(alg + jws)) throw new Error('alg and jws must not contain tabs or newlines')
      let file = pemFiles.get(spkiPem)
      if (!file) {
        file = join(dir, `pub${pemFiles.size}.pem`)
        await writeFile(file, spkiPem)
        pemFiles.set(spkiPem, file)
      }
      lines.push(`${alg}\t${file}\t${jws}`)
    }
    const batch = join(dir, 'batch.tsv')
    await writeFile(batch, lines.join('\n') + '\n')
    let stdout
    try {
      ;({ stdout } = await execFile('java', [...JAVA, 'verify-batch', batch], { env: childEnv(env), timeout: TIMEOUT }))
    } catch (err) {
      throw failure('JwsTool verify-batch', err)
    }
    const results = stdout
      .trim()
      .split('\n')
      .map((l) => l.trim() === 'valid')
    if (results.length !== items.length) {
      throw new Error(`JwsTool verify-batch returned ${results.length} results for ${items.length} JWS`)
    }
    return results
  })
}

/** Verifies with the public key of the keystore certificate `alias` (the Nimbus HSM guide flow). */
export async function javaVerifyP11({ cfg, pin, alias, alg, jws, env }) {
  return runVerify(['verify-p11', cfg, pin, alias, alg, jws], env)
}

/** Signs `payload` (object or JSON string) with the token key `alias` through SunPKCS11; returns the compact JWS. */
export async function javaSignP11({ cfg, pin, alias, alg, payload, env }) {
  const json = typeof payload === 'string' ? payload : JSON.stringify(payload)
  try {
    const { stdout } = await execFile('java', [...JAVA, 'sign-p11', cfg, pin, alias, alg, json], {
      env: childEnv(env),
      timeout: TIMEOUT,
    })
    return stdout.trim()
  } catch (err) {
    throw failure(`JwsTool sign-p11 ${alias} ${alg}`, err)
  }
}
