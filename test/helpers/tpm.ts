// A software TPM 2.0 made from nothing in a temp folder, and tpm2-pkcs11 over it: swtpm on
// 127.0.0.1, a private D-Bus bus, tpm2-abrmd on it as resource manager (tpm2_ptool fails without
// one), a tpm2-pkcs11 store with a token and keys made by tpm2_ptool. stop() ends the three
// processes and removes the folder; they are killed on exit too.
//
//   const tpm = await startTpm()                  // sets the TCTI and store env of this process
//   tpm.addToken('tpm', '1234'); tpm.addKey('tpm', '1234', { label: 'ptool-ec', algorithm: 'ecc256' })
//   ... Pkcs11Crypto.open({ library: TPM_MODULE, token: { label: 'tpm' }, pin: '1234' })
//   await tpm.stop()
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createConnection, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

export const TPM_MODULE = ['/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so', '/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so', '/usr/lib64/pkcs11/libtpm2_pkcs11.so'].find(
  (path) => existsSync(path),
)
const TABRMD_TCTI = ['/usr/lib/x86_64-linux-gnu/libtss2-tcti-tabrmd.so.0', '/usr/lib/aarch64-linux-gnu/libtss2-tcti-tabrmd.so.0', '/usr/lib64/libtss2-tcti-tabrmd.so.0']

/** Why the TPM tests cannot run here, or undefined when they can. */
export function tpmMissing() {
  if (!TPM_MODULE) return 'libtpm2_pkcs11.so not found (apt-get install libtpm2-pkcs11-1; see scripts/install-deps.sh)'
  if (!TABRMD_TCTI.some((path) => existsSync(path))) return 'the tabrmd TCTI is not installed (apt-get install libtss2-tcti-tabrmd0)'
  for (const tool of ['swtpm', 'tpm2-abrmd', 'tpm2_ptool', 'tpm2_getrandom', 'dbus-daemon']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      return `${tool} not found (scripts/install-deps.sh installs the TPM stack)`
    }
  }
  return undefined
}

const running = new Set()
process.on('exit', () => {
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'kill' does not exist on type 'unknown'.
  for (const child of running) child.kill('SIGKILL')
})

function listenable(port) {
  return new Promise((resolve) => {
    const server = createServer()
      .listen(port, '127.0.0.1', () => {
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'port' does not exist on type 'string | AddressInfo'.
        const { port: taken } = server.address()
        server.close(() => resolve(taken))
      })
      .on('error', () => resolve(undefined))
  })
}

/** Two free loopback ports in a row: the swtpm TCTI reaches the control channel on port + 1. */
async function freePorts() {
  for (;;) {
    const port = await listenable(0)
    // @ts-expect-error TS2365 (converted from JavaScript): Operator '<' cannot be applied to types 'unknown' and 'number'.
    if (port < 65535 && (await listenable(port + 1))) return [port, port + 1]
  }
}

function canConnect(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.end()
      resolve(true)
    }).on('error', () => resolve(false))
  })
}

function start(command, args, env) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  running.add(child)
  let output = ''
  child.stdout.on('data', (chunk) => {
    output += chunk
  })
  child.stderr.on('data', (chunk) => {
    output += chunk
  })
  child.on('exit', () => running.delete(child))
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'output' does not exist on type 'ChildProcessByStdio<null, Readable, Readable>'.
  child.output = () => output
  return child
}

async function until(what, check, child) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return
    if (child.exitCode !== null) throw new Error(`${what} ended: ${child.output()}`)
    await sleep(50)
  }
  throw new Error(`${what} did not start: ${child.output()}`)
}

/** Starts the TPM stack and points this process's tpm2-pkcs11 and tpm2-tools env at it. */
export async function startTpm() {
  const dir = mkdtempSync(join(tmpdir(), 'p11wc-tpm-'))
  for (const sub of ['state', 'store', 'bus']) mkdirSync(join(dir, sub))
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
  try {
    return await startIn(dir)
  } catch (error) {
    // Nothing left behind when the stack does not come up.
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'kill' does not exist on type 'unknown'.
    for (const child of running) child.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
    throw error
  }
}

async function startIn(dir) {
  const [port, ctrl] = await freePorts()
  const swtpm = start(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${join(dir, 'state')}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
    ],
    process.env,
  )
  await until('swtpm', () => canConnect(port), swtpm)

  const busConfig = join(dir, 'bus.conf')
  writeFileSync(
    busConfig,
    `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:dir=${join(dir, 'bus')}</listen><auth>EXTERNAL</auth>
<policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>\n`,
  )
  const dbus = start('dbus-daemon', ['--config-file', busConfig, '--nofork', '--print-address=1'], process.env)
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'output' does not exist on type 'ChildProcessByStdio<null, Readable, Readable>'.
  await until('dbus-daemon', () => dbus.output().includes('\n'), dbus)
  const busName = `com.intel.tss2.Tabrmd.p11wc${process.pid}`
  const tcti = `tabrmd:bus_name=${busName},bus_type=session`
  const env = {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'output' does not exist on type 'ChildProcessByStdio<null, Readable, Readable>'.
    DBUS_SESSION_BUS_ADDRESS: dbus.output().split('\n')[0],
    TPM2TOOLS_TCTI: tcti,
    TPM2_PKCS11_TCTI: tcti,
    TPM2_PKCS11_STORE: join(dir, 'store'),
    TPM2_PKCS11_LOG_LEVEL: '0',
  }
  Object.assign(process.env, env)
  const abrmd = start(
    'tpm2-abrmd',
    ['--session', `--dbus-name=${busName}`, `--tcti=swtpm:host=127.0.0.1,port=${port}`, ...(process.getuid?.() === 0 ? ['--allow-root'] : [])],
    process.env,
  )
  const tpmAnswers = () => {
    try {
      execFileSync('tpm2_getrandom', ['4'], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  }
  await until('tpm2-abrmd', tpmAnswers, abrmd)

  const ptool = (...args) => execFileSync('tpm2_ptool', [...args, `--path=${env.TPM2_PKCS11_STORE}`], { stdio: ['ignore', 'pipe', 'pipe'] }).toString()
  ptool('init')
  return {
    dir,
    env,
    module: TPM_MODULE,
    addToken(label, pin, soPin = '5678') {
      ptool('addtoken', '--pid=1', `--label=${label}`, `--userpin=${pin}`, `--sopin=${soPin}`)
    },
    /** A key made by tpm2_ptool (algorithm: ecc256, ecc384, rsa2048 ...); `id` is taken as text, as the tool does. */
    addKey(token, pin, { label, id, algorithm }) {
      ptool('addkey', `--label=${token}`, `--key-label=${label}`, `--id=${id}`, `--userpin=${pin}`, `--algorithm=${algorithm}`)
    },
    /** Ends abrmd, the bus and swtpm, and removes the folder. */
    async stop() {
      for (const child of [abrmd, dbus, swtpm]) {
        if (child.exitCode !== null) continue
        const exited = new Promise((resolve) => child.once('exit', resolve))
        child.kill('SIGTERM')
        await Promise.race([exited, sleep(3000).then(() => child.kill('SIGKILL'))])
      }
      rmSync(dir, { recursive: true, force: true })
    },
  }
}
