// A remote token over p11-kit (issue #7): `p11-kit server` serves the SoftHSM token of this file on
// a Unix socket in a temp folder, and p11-kit-client.so is OUR module. Every feature must work
// through it, and a server restart in the middle of a signing load must be survived like a device
// removal.
//
// What p11-kit (0.24) does, found with the raw binding and checked by the first describe below:
//  - every C_GetFunctionList of p11-kit-client.so is a client of its own: its own C_Initialize (CKR_OK
//    again, not CKR_CRYPTOKI_ALREADY_INITIALIZED), its own connection, served by its own
//    `p11-kit-remote` process with its own SoftHSM: its own login state and object handles;
//  - the RPC passes only mechanisms whose parameters it can marshal: no CKM_EDDSA, no
//    CKM_SHA*_RSA_PKCS_PSS, no CKM_EC_EDWARDS_KEY_PAIR_GEN;
//  - `p11-kit server` runs a `p11-kit-remote` process per connection; SIGTERM to the server does not
//    end them, so a connection made before the restart goes on being served by the old process;
//  - when a connection's server process is gone, every call of that client returns CKR_DEVICE_ERROR,
//    even after a new server listens on the same socket: only C_Finalize + C_Initialize connects again.
import assert from 'node:assert/strict'
import { createHmac, createPublicKey, verify as nodeVerify, X509Certificate } from 'node:crypto'
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'
import { CLIENT_MODULE, P11KitServer, p11KitMissing } from './helpers/p11kit.js'

const LABEL = 'remote'
const missing = p11KitMissing()
const softhsm = freshSoftHsm()
softhsm.initToken(LABEL)
const keys = provisionTestKeys(softhsm, LABEL)

const server = missing ? undefined : new P11KitServer(softhsm, LABEL)
if (server) {
  await server.start()
  // p11-kit-client reads it at C_GetFunctionList: before the library (or anyone) loads the module.
  process.env.P11_KIT_SERVER_ADDRESS = server.address
}
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
const pkcs11js = createRequire(import.meta.url)('pkcs11js')

after(async () => {
  await server?.stopAll()
})

const data = new TextEncoder().encode('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJyZW1vdGUifQ')
const ecdsa = { name: 'ECDSA', hash: 'SHA-256' }
// @ts-expect-error TS2339 (converted from JavaScript): Property 'p256' does not exist on type '{}'.
const verifiesP256 = (signature) => nodeVerify('sha256', data, { key: keys.p256.publicKey, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature))

/** Rejects when `promise` takes longer than `ms`: nothing may hang. */
function within(ms, promise) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}

/** The library's error, shortly: which call answered which CKR_ code. */
function describeError(error) {
  const cause = error?.cause ?? error
  return `${error?.name}: ${cause?.code ?? '?'} from ${cause?.function ?? '?'} (${error?.message})`
}

/** A raw p11-kit-client instance (its own connection), logged in; for probing p11-kit itself. */
function rawClient() {
  const p11 = new pkcs11js.PKCS11()
  p11.load(CLIENT_MODULE)
  p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === LABEL)
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION)
  return {
    p11,
    slot,
    session,
    login() {
      p11.C_Login(session, pkcs11js.CKU_USER, PIN)
    },
    findPrivate(label) {
      p11.C_FindObjectsInit(session, [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_LABEL, value: label },
      ])
      try {
        return p11.C_FindObjects(session, 1)[0]
      } finally {
        p11.C_FindObjectsFinal(session)
      }
    },
    signEcdsa(s, key) {
      p11.C_SignInit(s, { mechanism: pkcs11js.CKM_ECDSA }, key)
      return p11.C_Sign(s, Buffer.alloc(32, 7), Buffer.alloc(64))
    },
    close() {
      try {
        p11.C_Finalize()
      } catch {
        /* connection gone */
      }
      p11.close()
    },
  }
}

/** Mechanisms SoftHSM has that p11-kit 0.24's RPC leaves out (pkcs11js 2.1 has no names for the first two). */
const NOT_PASSED = { CKM_EDDSA: 0x1057, CKM_EC_EDWARDS_KEY_PAIR_GEN: 0x1055, CKM_SHA256_RSA_PKCS_PSS: 0x43 }

const ckr = (fn) => {
  try {
    fn()
    return 'CKR_OK'
  } catch (error) {
    return /CKR_[A-Z_]+/.exec(error.message)?.[0] ?? error.message
  }
}

describe('p11-kit itself (raw binding): what the library meets', { skip: missing }, () => {
  test('the mechanisms that pass the RPC: CKM_EDDSA and the CKM_SHA*_RSA_PKCS_PSS family do not', () => {
    const remote = rawClient()
    const local = new pkcs11js.PKCS11()
    local.load(softhsm.module) // SoftHSM itself, in this process: SOFTHSM2_CONF is ours
    local.C_Initialize()
    try {
      const localSlot = local.C_GetSlotList(true).find((s) => local.C_GetTokenInfo(s).label.trim() === LABEL)
      const here = new Set(local.C_GetMechanismList(localSlot))
      const there = new Set(remote.p11.C_GetMechanismList(remote.slot))
      for (const [m, value] of Object.entries(NOT_PASSED)) {
        assert.ok(here.has(value), `SoftHSM lists ${m}`)
        assert.ok(!there.has(value), `p11-kit's RPC now passes ${m}: the Ed25519 test below runs`)
      }
      for (const m of ['CKM_ECDSA', 'CKM_RSA_PKCS', 'CKM_SHA256_RSA_PKCS', 'CKM_RSA_PKCS_PSS', 'CKM_SHA256_HMAC', 'CKM_EC_KEY_PAIR_GEN']) {
        assert.ok(there.has(pkcs11js[m]), `p11-kit passes ${m}`)
      }
    } finally {
      local.C_Finalize()
      local.close()
      remote.close()
    }
  })

  test('each load of p11-kit-client.so is a separate client: its own C_Initialize, login and handles', () => {
    const a = rawClient()
    const b = rawClient() // C_Initialize answered CKR_OK, not CKR_CRYPTOKI_ALREADY_INITIALIZED
    try {
      a.login()
      const key = a.findPrivate('p256')
      assert.equal(a.signEcdsa(a.session, key).length, 64)
      // The login of `a` is not b's, and a's handle means nothing (or something else) to b.
      assert.equal(b.findPrivate('p256'), undefined, 'b is not logged in')
      assert.equal(
        ckr(() => b.signEcdsa(b.session, key)),
        'CKR_OBJECT_HANDLE_INVALID',
      )
    } finally {
      a.close()
      b.close()
    }
  })

  test('a lost connection: CKR_DEVICE_ERROR for every call, even with a new server; C_Finalize + C_Initialize connects again', async () => {
    const probeServer = new P11KitServer(softhsm, LABEL) // a server of its own: the others go on
    await probeServer.start()
    const saved = process.env.P11_KIT_SERVER_ADDRESS
    process.env.P11_KIT_SERVER_ADDRESS = probeServer.address
    let client
    try {
      client = rawClient()
      client.login()
      const key = client.findPrivate('p256')
      assert.equal(client.signEcdsa(client.session, key).length, 64)

      // SIGTERM to `p11-kit server` alone: the connection's p11-kit-remote process goes on serving it.
      const served = probeServer.connectionProcesses()
      assert.equal(served.length, 1, 'one p11-kit-remote process for the one connection')
      await probeServer.stop('SIGTERM', { connections: false })
      assert.equal(client.signEcdsa(client.session, key).length, 64, 'still served after the server was stopped')

      // The connection's process ends too (a restart that takes everything down, as systemd does).
      probeServer.killProcesses(served)
      await sleep(100)
      const seen = {
        sign: ckr(() => client.signEcdsa(client.session, key)),
        slots: ckr(() => client.p11.C_GetSlotList(true)),
        open: ckr(() => client.p11.C_OpenSession(client.slot, 6)),
      }
      await probeServer.start()
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'slotsWithNewServer' does not exist on type '{ sign: any; slots: any; open: any; }'.
      seen.slotsWithNewServer = ckr(() => client.p11.C_GetSlotList(true))
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'openWithNewServer' does not exist on type '{ sign: any; slots: any; open: any; }'.
      seen.openWithNewServer = ckr(() => client.p11.C_OpenSession(client.slot, 6))
      assert.deepEqual(seen, {
        sign: 'CKR_DEVICE_ERROR',
        slots: 'CKR_DEVICE_ERROR',
        open: 'CKR_DEVICE_ERROR',
        slotsWithNewServer: 'CKR_DEVICE_ERROR',
        openWithNewServer: 'CKR_DEVICE_ERROR',
      })

      client.p11.C_Finalize()
      client.p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
      const session = client.p11.C_OpenSession(client.slot, 6)
      client.p11.C_Login(session, pkcs11js.CKU_USER, PIN)
      client.session = session
      assert.equal(client.signEcdsa(session, client.findPrivate('p256')).length, 64, 'a new C_Initialize reaches the new server')
    } finally {
      client?.close()
      process.env.P11_KIT_SERVER_ADDRESS = saved
      await probeServer.stopAll()
    }
  })
})

describe('every feature through p11-kit-client.so', { skip: missing }, () => {
  let hsm
  let remoteMechanisms
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: CLIENT_MODULE, token: { label: LABEL }, pin: PIN, timeout: 5000 })
    const probe = rawClient()
    remoteMechanisms = new Set(probe.p11.C_GetMechanismList(probe.slot))
    probe.close()
  })
  after(async () => {
    await hsm?.close()
  })

  test('keys.list and keys.get find RSA, EC and HMAC keys', async () => {
    const byLabel = Object.fromEntries((await hsm.keys.list()).map((k) => [k.label, k]))
    for (const label of ['rsa', 'p256', 'p384', 'p521', 'ed25519', 'hmac']) assert.ok(byLabel[label], `${label} listed`)
    assert.equal(byLabel.rsa.bits, 2048)
    // CKM_SHA*_RSA_PKCS_PSS does not pass the RPC: PS* signs with CKM_RSA_PKCS_PSS on a software digest.
    assert.deepEqual(byLabel.rsa.algorithms, ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'])
    assert.deepEqual(byLabel.p256.algorithms, ['ES256'])
    assert.equal(byLabel.p521.curve, 'P-521')
    const { publicKey } = await hsm.keys.get({ label: 'p256' })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'p256' does not exist on type '{}'.
    assert.deepEqual(Buffer.from(await hsm.subtle.exportKey('spki', publicKey)), keys.p256.publicKey.export({ format: 'der', type: 'spki' }))
  })

  for (const [alg, label, check] of [
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'rsa' does not exist on type '{}'.
    ['RS256', 'rsa', (sig) => nodeVerify('sha256', data, keys.rsa.publicKey, sig)],
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'rsa' does not exist on type '{}'.
    ['PS256', 'rsa', (sig) => nodeVerify('sha256', data, { key: keys.rsa.publicKey, padding: 6, saltLength: 32 }, sig)],
    ['ES256', 'p256', (sig) => verifiesP256(sig)],
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'p384' does not exist on type '{}'.
    ['ES384', 'p384', (sig) => nodeVerify('sha384', data, { key: keys.p384.publicKey, dsaEncoding: 'ieee-p1363' }, sig)],
  ]) {
    test(`${alg} with "${label}" signs through the server; Node verifies on the exported public key`, async () => {
      const { privateKey, publicKey } = await hsm.keys.get({ label }, { algorithm: alg })
      const params = { name: privateKey.algorithm.name, hash: privateKey.algorithm.hash ?? publicKey.algorithm.hash, saltLength: 32 }
      let signature
      try {
        // @ts-expect-error TS2339 (converted from JavaScript): Property 'startsWith' does not exist on type 'string | ((sig: any) => boolean)'.
        signature = Buffer.from(await within(10_000, hsm.subtle.sign(alg.startsWith('ES') ? { name: 'ECDSA', hash: `SHA-${alg.slice(2)}` } : params, privateKey, data)))
      } catch (error) {
        assert.fail(`${alg} sign through p11-kit-client failed: ${describeError(error)}`)
      }
      const spki = createPublicKey({ key: Buffer.from(await hsm.subtle.exportKey('spki', publicKey)), format: 'der', type: 'spki' })
      // @ts-expect-error TS2538 (converted from JavaScript): Type '(sig: any) => boolean' cannot be used as an index type.
      assert.ok(spki.equals(keys[label].publicKey))
      // @ts-expect-error TS2349 (converted from JavaScript): This expression is not callable.
      assert.ok(check(signature), `${alg} signature verifies`)
    })
  }

  test('Ed25519 (EdDSA) through the server', async (t) => {
    if (!remoteMechanisms.has(NOT_PASSED.CKM_EDDSA)) {
      // The key is found, but p11-kit 0.24's RPC cannot marshal CKM_EDDSA (CK_EDDSA_PARAMS): it leaves it
      // out of C_GetMechanismList, so the token cannot sign EdDSA through it.
      const found = (await hsm.keys.list()).find((k) => k.label === 'ed25519')
      assert.deepEqual(found.algorithms, [], 'no EdDSA offered without CKM_EDDSA')
      t.skip('p11-kit RPC does not pass CKM_EDDSA (not in the remote C_GetMechanismList)')
      return
    }
    const { privateKey } = await hsm.keys.get({ label: 'ed25519' })
    const signature = await hsm.subtle.sign('Ed25519', privateKey, data)
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'ed25519' does not exist on type '{}'.
    assert.ok(nodeVerify(null, data, keys.ed25519.publicKey, Buffer.from(signature)))
  })

  test("HMAC (HS256) with a token secret key equals Node's HMAC", async () => {
    const { privateKey } = await hsm.keys.get({ label: 'hmac' }, { algorithm: 'HS256' })
    try {
      const mac = await within(10_000, hsm.subtle.sign('HMAC', privateKey, data))
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'hmac' does not exist on type '{}'.
      assert.deepEqual(Buffer.from(mac), createHmac('sha256', keys.hmac.secret).update(data).digest())
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error
      assert.fail(`HMAC through p11-kit-client failed: ${describeError(error)}`)
    }
  })

  test("getRandomValues from the token's RNG", () => {
    const a = hsm.getRandomValues(new Uint8Array(32))
    const b = hsm.getRandomValues(new Uint8Array(32))
    assert.notDeepEqual(a, b)
    assert.ok(a.some((x) => x !== 0))
  })

  test('jose SignJWT via installGlobal; jose verifies', async () => {
    const { SignJWT, jwtVerify } = await import('jose')
    const { privateKey, publicKey } = await hsm.keys.get({ label: 'p256' }, { algorithm: 'ES256' })
    const uninstall = hsm.installGlobal()
    try {
      const jwt = await within(10_000, new SignJWT({ sub: 'remote' }).setProtectedHeader({ alg: 'ES256' }).sign(privateKey))
      assert.equal((await jwtVerify(jwt, publicKey)).payload.sub, 'remote')
    } catch (error) {
      if (error instanceof assert.AssertionError) throw error
      assert.fail(`SignJWT through p11-kit-client failed: ${describeError(error)}`)
    } finally {
      uninstall()
    }
  })

  test('keys.generate with a certificate, then certificates.list', async () => {
    let generated
    try {
      generated = await within(20_000, hsm.keys.generate({ algorithm: 'ES256', label: 'remote-gen', certificate: { subject: 'CN=remote' } }))
    } catch (error) {
      // The key pair is made (C_GenerateKeyPair on the main thread); the self-signed certificate needs a signature.
      const list = await hsm.keys.list()
      assert.fail(`keys.generate with a certificate failed: ${describeError(error)}; key pair left on the token: ${list.some((k) => k.label === 'remote-gen')}`)
    }
    assert.ok(generated.certificate, 'a certificate came back')
    const certificates = await hsm.certificates.list()
    const mine = certificates.find((c) => c.subject === 'CN=remote')
    assert.ok(mine, `certificates.list shows CN=remote: ${JSON.stringify(certificates.map((c) => c.subject))}`)
    const der = generated.certificate.rawData ?? generated.certificate
    const x509 = new X509Certificate(Buffer.from(der))
    assert.ok(x509.verify(x509.publicKey), 'self-signed by the token key')
  })

  test('100 concurrent signs, all verified', async () => {
    const { privateKey } = await hsm.keys.get({ label: 'p256' })
    const outcomes = await within(20_000, Promise.allSettled(Array.from({ length: 100 }, () => hsm.subtle.sign(ecdsa, privateKey, data))))
    const failed = outcomes.filter((o) => o.status === 'rejected').map((o) => describeError(o.reason))
    assert.deepEqual([...new Set(failed)], [], `${failed.length}/100 failed`)
    for (const o of outcomes) assert.ok(verifiesP256(o.value))
  })
})

/**
 * A signing load (8 at a time, 6 s, deadline 8 s each) during which the server is stopped at 2 s
 * (`stop`) and a new one starts on the same socket at 3 s.
 */
async function signThroughRestart(stop) {
  const hsm = await Pkcs11Crypto.open({ library: CLIENT_MODULE, token: { label: LABEL }, pin: PIN, timeout: 8000 })
  const { privateKey } = await hsm.keys.get({ label: 'p256' })
  const results = []
  const t0 = performance.now()
  let back = Infinity
  const load = Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() - t0 < 6000) {
        const begun = performance.now() - t0
        try {
          const signature = await within(12_000, hsm.subtle.sign(ecdsa, privateKey, data))
          results.push({ begun, ok: verifiesP256(signature), took: performance.now() - t0 - begun })
        } catch (error) {
          results.push({ begun, ok: false, took: performance.now() - t0 - begun, code: error.cause?.code, fn: error.cause?.function, error: describeError(error) })
          await sleep(20)
        }
      }
    }),
  )
  // The main thread's own connection (lookups, getRandomValues), every 250 ms.
  const probes = []
  const probing = (async () => {
    while (performance.now() - t0 < 6000) {
      const at = performance.now() - t0
      try {
        hsm.getRandomValues(new Uint8Array(16))
        probes.push({ at, ok: true })
      } catch (error) {
        probes.push({ at, ok: false, code: error.cause?.code ?? error.code, error: describeError(error) })
      }
      await sleep(250)
    }
  })()
  await sleep(2000)
  await stop()
  await sleep(1000)
  await server.start()
  back = performance.now() - t0
  await Promise.all([load, probing])
  // Well after the new server is up: one more sign, one more random, on the same instance.
  const after = {}
  try {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'sign' does not exist on type '{}'.
    after.sign = verifiesP256(await within(10_000, hsm.subtle.sign(ecdsa, privateKey, data))) ? 'ok' : 'bad signature'
  } catch (error) {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'sign' does not exist on type '{}'.
    after.sign = describeError(error)
  }
  try {
    hsm.getRandomValues(new Uint8Array(16))
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'random' does not exist on type '{}'.
    after.random = 'ok'
  } catch (error) {
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'random' does not exist on type '{}'.
    after.random = describeError(error)
  }
  await within(10_000, hsm.close())
  const failed = results.filter((r) => !r.ok)
  const codes = {}
  for (const f of failed) {
    const key = `${f.code} from ${f.fn}`
    codes[key] = (codes[key] ?? 0) + 1
  }
  const lateProbes = probes.filter((p) => p.at > back + 2000)
  return { results, failed, codes, back, after, lateProbes, probeCodes: [...new Set(probes.filter((p) => !p.ok).map((p) => p.code))] }
}

function report(name, { results, failed, codes, back, after, probeCodes }) {
  const late = results.filter((r) => r.begun > back + 2000)
  console.log(
    `# ${name}: ${results.length} signs, ${failed.length} failed; server back at ${back.toFixed(0)} ms; ` +
      `${late.length} begun > 2 s after, ${late.filter((r) => !r.ok).length} of them failed; codes: ${JSON.stringify(codes)}; ` +
      `getRandomValues failed with: ${JSON.stringify(probeCodes)}; afterwards: ${JSON.stringify(after)}`,
  )
  return late
}

/** What must hold once the new server has been up for 2 s: everything works on the same instance. */
function assertRecovered({ after, lateProbes }, late) {
  assert.deepEqual(after, { sign: 'ok', random: 'ok' }, 'a sign and getRandomValues > 3 s after the new server was up')
  assert.deepEqual([...new Set(lateProbes.filter((p) => !p.ok).map((p) => p.error))], [], 'getRandomValues > 2 s after the new server was up')
  assert.deepEqual([...new Set(late.filter((r) => !r.ok).map((r) => r.error))], [], 'signs begun > 2 s after the new server was up all succeed')
  assert.ok(late.length > 50, `${late.length} signs begun > 2 s after the new server was up`)
}

/** What a failed sign must name: a CKR_ code a reconnection is meant to cure. */
const OUTAGE_CODES = [
  'CKR_DEVICE_REMOVED',
  'CKR_DEVICE_ERROR',
  'CKR_GENERAL_ERROR',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_SESSION_CLOSED',
  'CKR_FUNCTION_FAILED',
]

describe('the p11-kit server restarted during a signing load', { skip: missing }, () => {
  test('SIGTERM to `p11-kit server` at 2 s, a new one on the same socket at 3 s: signs go on', async () => {
    const outcome = await signThroughRestart(() => server.stop('SIGTERM', { connections: false }))
    const late = report('server SIGTERM (connection processes survive)', outcome)
    for (const f of outcome.failed) assert.match(String(f.code), /^CKR_/, f.error)
    assertRecovered(outcome, late)
  })

  test('the server and its connection processes killed at 2 s, a new server at 3 s: like a device removal', async () => {
    const outcome = await signThroughRestart(() => server.stop('SIGTERM', { connections: true }))
    const late = report('server and connections killed', outcome)
    assertRecovered(outcome, late)
    for (const f of outcome.failed) {
      assert.ok(OUTAGE_CODES.includes(f.code) || (f.begun < 2000 && /^CKR_/.test(String(f.code))), `a sign failed with ${f.error}`)
      assert.ok(f.took < 8000 + 1500, `a failed sign took ${f.took.toFixed(0)} ms, beyond its 8 s deadline`)
    }
  })
})
