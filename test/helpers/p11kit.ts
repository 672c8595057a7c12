// A remote token over p11-kit (issue #7): `p11-kit server` serving a SoftHSM token on a Unix socket
// in a temp folder, and p11-kit-client.so, the module that reaches it (it reads
// P11_KIT_SERVER_ADDRESS when the module is loaded).
//
//   const softhsm = freshSoftHsm(); softhsm.initToken('remote')
//   const server = new P11KitServer(softhsm, 'remote')
//   await server.start()
//   process.env.P11_KIT_SERVER_ADDRESS = server.address   // before the client module is loaded
//   ... Pkcs11Crypto.open({ library: CLIENT_MODULE, token: { label: 'remote' }, pin })
//   await server.stop()                                   // SIGTERM; start() again: same socket
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { freshSoftHsm } from './softhsm.js'

/** p11-kit's client module: a PKCS#11 module whose token lives in the p11-kit server. */
export const CLIENT_MODULE = findClientModule()

function findClientModule() {
  const known = [
    '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so',
    '/usr/lib/aarch64-linux-gnu/pkcs11/p11-kit-client.so',
    '/usr/lib64/pkcs11/p11-kit-client.so',
    '/usr/lib/pkcs11/p11-kit-client.so',
  ].find((path) => existsSync(path))
  if (known) return known
  try {
    return (
      execFileSync('find', ['/usr/lib', '/usr/lib64', '-name', 'p11-kit-client.so'], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .split('\n')[0] || undefined
    )
  } catch (error) {
    return error.stdout?.toString().split('\n')[0] || undefined
  }
}

/** Why the p11-kit tests cannot run here, or undefined when they can. */
export function p11KitMissing() {
  if (!CLIENT_MODULE) return 'p11-kit-client.so not found (apt-get install p11-kit-modules)'
  try {
    execFileSync('p11-kit', ['server', '--help'], { stdio: 'ignore' })
  } catch (error) {
    // `--help` exits 2 on some versions; only a missing binary counts.
    if (error.code === 'ENOENT') return 'p11-kit not found (apt-get install p11-kit)'
  }
  return undefined
}

const servers = new Set()
/** p11-kit-remote processes (one per client connection) seen under our servers. */
const connections = new Set()
process.on('exit', () => {
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'kill' does not exist on type 'unknown'.
  for (const server of servers) server.kill('SIGKILL')
  for (const pid of connections) {
    if (!isConnectionProcess(pid)) continue
    try {
      // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'unknown' is not assignable to parameter of type 'number'.
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone already
    }
  }
})

/** Whether `pid` is still a p11-kit-remote process (pids are reused). */
function isConnectionProcess(pid) {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('p11-kit-remote')
  } catch {
    return false
  }
}

/** `p11-kit server -f` for one token of a fresh SoftHSM store, on a Unix socket of its own temp folder. */
export class P11KitServer {
  readonly softhsm: ReturnType<typeof freshSoftHsm>
  readonly tokenLabel: string
  readonly dir: string
  readonly socket: string
  /** What P11_KIT_SERVER_ADDRESS says to the client module. */
  readonly address: string
  /** The running server, if any. */
  process: ChildProcess | undefined
  /** How often start() was called. */
  starts: number
  /** All the servers wrote on stderr. */
  stderr: string
  /** Settles when the current server ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>

  /** @param softhsm what freshSoftHsm() returned (the server gets its SOFTHSM2_CONF) */
  constructor(softhsm: ReturnType<typeof freshSoftHsm>, tokenLabel: string) {
    this.softhsm = softhsm
    this.tokenLabel = tokenLabel
    this.dir = mkdtempSync(join(tmpdir(), 'p11kit-'))
    this.socket = join(this.dir, 'pkcs11.sock')
    this.address = `unix:path=${this.socket}`
    this.process = undefined
    this.starts = 0
    this.stderr = ''
    process.on('exit', () => rmSync(this.dir, { recursive: true, force: true }))
  }

  /** Starts the server (again, on the same socket path) and resolves once it accepts connections. */
  async start() {
    if (this.process) throw new Error('the p11-kit server is running already')
    rmSync(this.socket, { force: true }) // a socket file left by a killed server
    const child = spawn('p11-kit', ['server', '-f', '--provider', this.softhsm.module, '--name', this.socket, `pkcs11:token=${this.tokenLabel}`], {
      env: { ...this.softhsm.env, SOFTHSM2_CONF: this.softhsm.conf },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.process = child
    servers.add(child)
    // Should this process die without its exit handlers (SIGKILL), the watchdog's stdin closes and it ends the server.
    const watchdog = spawn('sh', ['-c', `read _ || kill -TERM ${child.pid} 2>/dev/null`], { stdio: ['pipe', 'ignore', 'ignore'] })
    watchdog.unref()
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'unref' does not exist on type 'Writable'.
    watchdog.stdin.unref?.()
    // @ts-expect-error TS2339 (converted from JavaScript): Property '_handle' does not exist on type 'Writable'.
    watchdog.stdin._handle?.unref?.()
    child.once('exit', () => watchdog.kill('SIGKILL'))
    this.starts++
    let stdout = ''
    child.stdout.on('data', (chunk) => {
      stdout += chunk
    })
    child.stderr.on('data', (chunk) => {
      this.stderr += chunk
    })
    const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
    child.once('exit', () => {
      servers.delete(child)
      if (this.process === child) this.process = undefined
    })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'exited' does not exist on type 'P11KitServer'.
    this.exited = exited
    // It prints P11_KIT_SERVER_ADDRESS=...; export ... once the socket is listening.
    const t0 = Date.now()
    while (!stdout.includes('P11_KIT_SERVER_ADDRESS=') || !existsSync(this.socket)) {
      if (!this.process || this.process !== child) throw new Error(`p11-kit server exited at once: ${this.stderr.trim()}`)
      if (Date.now() - t0 > 5000) {
        child.kill('SIGKILL')
        throw new Error(`p11-kit server did not start within 5 s: ${stdout} ${this.stderr}`)
      }
      await sleep(20)
    }
    const printed = /P11_KIT_SERVER_ADDRESS=([^;\n]+)/.exec(stdout)?.[1]
    if (printed !== this.address) throw new Error(`p11-kit server listens on ${printed}, not ${this.address}`)
    return this
  }

  /** The `p11-kit-remote` processes the running server started, one per client connection. */
  connectionProcesses() {
    if (!this.process) return []
    let out = ''
    try {
      out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(this.process.pid)], { stdio: ['ignore', 'pipe', 'ignore'] }).toString()
    } catch (error) {
      out = error.stdout?.toString() ?? '' // ps exits 1 when there are none
    }
    const pids = out.split(/\s+/).filter(Boolean).map(Number)
    for (const pid of pids) connections.add(pid)
    return pids
  }

  /** Ends the given connection processes (by their pid). */
  killProcesses(pids, signal = 'SIGTERM') {
    for (const pid of pids) {
      if (!isConnectionProcess(pid)) continue // gone, and the pid perhaps someone else's now
      try {
        process.kill(pid, signal)
      } catch {
        // gone already
      }
    }
  }

  /**
   * Stops the server with `signal` and waits for it to exit. `p11-kit server` leaves the
   * p11-kit-remote processes of open connections running: with `connections: true` they are ended
   * too (what stopping a service with its control group does), and the clients lose their token.
   */
  async stop(signal = 'SIGTERM', { connections = false } = {}) {
    const child = this.process
    if (!child) return
    const served = this.connectionProcesses()
    // @ts-expect-error TS2345 (converted from JavaScript): Argument of type 'string' is not assignable to parameter of type 'number | Signals'.
    child.kill(signal)
    if (connections) this.killProcesses(served, signal)
    const exit = await Promise.race([this.exited, sleep(3000).then(() => undefined)])
    if (!exit) {
      child.kill('SIGKILL')
      await this.exited
    }
  }

  /** Stops the server and every connection process it ever started. */
  async stopAll() {
    await this.stop('SIGTERM', { connections: true })
    this.killProcesses([...connections], 'SIGKILL')
    connections.clear()
  }
}
