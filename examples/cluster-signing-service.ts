/**
 * A JWT signing service that keeps up with a fast token on every core: one process per core
 * (node:cluster), each with its own login, signing in place on its main thread (`inPlace:
 * 'always'`, `maxSessions: 3`: lookups, in place, and a worker for what cannot run in place).
 * jose's work and the signing are then spread over the cores by the processes, no process's
 * signing waits on another's lock inside the module, and no signature pays a hand-over between
 * threads (README, Performance).
 *
 *   PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so PKCS11_TOKEN=demo PKCS11_PIN=1234 \
 *     node dist/examples/cluster-signing-service.js [port] [key label] [alg]
 *
 *   POST /token   a JSON object of claims: answers a compact JWS (text/plain)
 *   GET  /jwks    the token's public keys (application/json)
 *
 * The first process logs in once before it starts the others: a wrong PIN fails there, once, and
 * not once in every process (a token locks after a few wrong tries). A process that dies after it
 * was serving is replaced. One that could not start is started again (twice at most) when what
 * stopped it was not the PIN: SoftHSM's file store answers CKR_GENERAL_ERROR now and then to
 * processes that log in at the same moment. Otherwise the service stops: it would only try again.
 */
import cluster from 'node:cluster'
import { createServer, type IncomingMessage } from 'node:http'
import { availableParallelism } from 'node:os'
import { calculateJwkThumbprint, exportJWK, SignJWT } from 'jose'
import { Pkcs11Crypto } from 'pkcs11-webcrypto'

const [port = '8080', label = 'signing-key', alg = 'ES256'] = process.argv.slice(2)
const processes = Number(process.env.SIGNING_PROCESSES) || availableParallelism()
const MAX_BODY = 64 * 1024

if (cluster.isPrimary) await primary()
else await signer()

/** Checks the PIN and the key with one login, then starts a signing process per core. */
async function primary(): Promise<void> {
  try {
    const hsm = await Pkcs11Crypto.open()
    try {
      await hsm.keys.get({ label }, { algorithm: alg })
    } finally {
      await hsm.close()
    }
  } catch (error) {
    console.error(`not started: ${(error as Error).message}`)
    process.exit(1)
  }
  const serving = new Set<number>()
  /** Why each process that could not start stopped (the code of its error). */
  const failures = new Map<number, string>()
  let restarts = 0
  let stopping = false
  const stop = (code: number) => {
    stopping = true
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM')
    if (code !== 0) process.exitCode = code
  }
  const start = () => {
    const worker = cluster.fork()
    worker.on('message', (message: { serving?: boolean; failed?: string }) => {
      if (message.failed !== undefined) failures.set(worker.id, message.failed)
      if (!message.serving) return
      serving.add(worker.id)
      if (serving.size === processes) console.log(`listening on http://127.0.0.1:${port} with ${processes} processes`)
    })
  }
  cluster.on('exit', (worker, code, signal) => {
    const wasServing = serving.delete(worker.id)
    if (stopping) return
    const failure = failures.get(worker.id)
    const again = wasServing || (failure !== undefined && !failure.startsWith('CKR_PIN_') && restarts++ < 2)
    console.error(`process ${worker.process.pid} ended (${signal ?? `exit code ${code}`}${failure ? `, ${failure}` : ''})${again ? ': starting another' : ''}`)
    if (again) start()
    else stop(1)
  })
  process.once('SIGTERM', () => stop(0))
  for (let i = 0; i < processes; i++) start()
}

/** One signing process: its own login, signing in place, serving on the shared port. */
async function signer(): Promise<void> {
  try {
    await serve()
  } catch (error) {
    // The primary decides whether to start another: it needs the cause's code (never a message: no PIN).
    const code = (error as { code?: unknown; cause?: { code?: unknown } }).cause?.code ?? (error as { code?: unknown }).code
    process.send!({ failed: typeof code === 'string' ? code : 'unknown' }, () => process.exit(1))
  }
}

async function serve(): Promise<void> {
  const hsm = await Pkcs11Crypto.open({ maxSessions: 3, inPlace: 'always' })
  hsm.installGlobal()
  const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
  if (!publicKey) throw new Error(`key "${label}" has no public key on the token`)
  // The JWKS names keys by their RFC 7638 thumbprint; the tokens name theirs the same way.
  const kid = await calculateJwkThumbprint(await exportJWK(publicKey))
  const jwks = JSON.stringify(await hsm.jwks())

  const server = createServer(async (request, response) => {
    const answer = (status: number, type: string, body: string) => {
      response.writeHead(status, { 'content-type': type, 'x-signed-by': String(process.pid) }).end(body)
    }
    if (request.method === 'GET' && request.url === '/jwks') return answer(200, 'application/json', jwks)
    if (request.method !== 'POST' || request.url !== '/token') return answer(404, 'text/plain', 'not found\n')
    let claims: Record<string, unknown>
    try {
      claims = await readJson(request)
    } catch (error) {
      return answer(400, 'text/plain', `${(error as Error).message}\n`)
    }
    try {
      answer(200, 'text/plain', await new SignJWT(claims).setProtectedHeader({ alg, kid }).setIssuedAt().sign(privateKey))
    } catch (error) {
      answer(500, 'text/plain', `${(error as Error).message}\n`)
    }
  })
  server.listen(Number(port), '127.0.0.1', () => process.send!({ serving: true }))
  process.once('SIGTERM', () => server.close(() => void hsm.close().then(() => process.exit(0))))
}

/** The request's body as a JSON object of claims. */
async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  let body = ''
  for await (const chunk of request) {
    body += chunk
    if (body.length > MAX_BODY) throw new Error('the claims are too large')
  }
  const claims: unknown = JSON.parse(body)
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new Error('the claims must be a JSON object')
  return claims as Record<string, unknown>
}
