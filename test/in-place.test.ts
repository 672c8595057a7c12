// Calls in place (issue #17): a call alone, of a kind the device does fast, runs on the main thread
// instead of a signing worker. Through the fault module over SoftHSM, so that the device can be made
// slow or failing, and its calls counted: the module counts the C_Sign calls made on the main thread.
import assert from 'node:assert/strict'
import { randomBytes, webcrypto } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { after, before, describe, test } from 'node:test'
import { faultP256Token, JWT_INPUT } from './helpers/fault.js'

const LABEL = 'in-place'
const PIN = '564738'
const { control, faultModule, verifies } = faultP256Token(LABEL, { pin: PIN, id: '01' })
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

const params = { name: 'ECDSA', hash: 'SHA-256' }
/** Sessions enough for a worker a core and the one in place, whatever the cores. */
const ROOM = { maxSessions: availableParallelism() + 3 }
const data = JWT_INPUT

async function open(options = {}) {
  const hsm = await Pkcs11Crypto.open({ library: faultModule, token: { label: LABEL }, pin: PIN, timeout: 5000, ...options })
  const { privateKey } = await hsm.keys.get({ label: 'p256' })
  return { hsm, privateKey }
}

/** Signs `count` times one after another; says how many ran in place (on the main thread), and checks every signature. */
async function signInTurn(hsm, privateKey, count: number): Promise<number> {
  const before = control.countsSync().mainThreadSigns
  for (let i = 0; i < count; i++) assert.ok(verifies(await hsm.subtle.sign(params, privateKey, data)), `signature ${i} verifies`)
  return control.countsSync().mainThreadSigns - before
}

/**
 * Signs for `ms` (300) in `chains` chains, each call made when the one before it in its chain is
 * answered, while a 1 ms timer counts the event loop's turns; then checks every signature (after,
 * so that the checks do not keep the main thread busy).
 */
async function backToBack(hsm, privateKey, chains: number, ms = 300): Promise<{ inPlace: number; signed: number; turns: number }> {
  const before = control.countsSync().mainThreadSigns
  let turns = 0
  const ticking = setInterval(() => turns++, 1)
  const until = performance.now() + ms
  const signatures: ArrayBuffer[] = []
  const chain = async () => {
    while (performance.now() < until) signatures.push(await hsm.subtle.sign(params, privateKey, data))
  }
  await Promise.all(Array.from({ length: chains }, chain))
  clearInterval(ticking)
  const inPlace = control.countsSync().mainThreadSigns - before
  signatures.forEach((signature, i) => assert.ok(verifies(signature), `signature ${i} verifies`))
  return { inPlace, signed: signatures.length, turns }
}

describe('calls in place', () => {
  before(() => control.reset())
  after(() => control.reset())

  test('one call at a time on a fast device runs in place, on one more session; every signature verifies', async () => {
    const { hsm, privateKey } = await open()
    try {
      const before = control.countsSync().sessionsOpen
      // The first call of a kind goes to a worker, which times it.
      // (A signature slowed by a busy machine may send the next few to a worker.)
      const inPlace = await signInTurn(hsm, privateKey, 40)
      assert.ok(inPlace >= 30, `${inPlace} of 40 in place`)
      // The lookup session, one worker's, the one in place.
      assert.equal(control.countsSync().sessionsOpen - before, 2)
    } finally {
      await hsm.close()
    }
  })

  test("never with inPlace: 'never', nor without a session to spare (maxSessions: 2)", async () => {
    for (const options of [{ inPlace: 'never' }, { maxSessions: 2 }]) {
      const { hsm, privateKey } = await open(options)
      try {
        assert.equal(await signInTurn(hsm, privateKey, 20), 0, JSON.stringify(options))
      } finally {
        await hsm.close()
      }
    }
  })

  test('a device that turns slow leaves the main thread after one call', async () => {
    const { hsm, privateKey } = await open()
    try {
      assert.ok((await signInTurn(hsm, privateKey, 10)) >= 5)
      control.latency('C_Sign', 20_000)
      assert.ok((await signInTurn(hsm, privateKey, 6)) <= 1)
    } finally {
      control.reset()
      await hsm.close()
    }
  })

  test('calls in place back to back let the event loop turn', async () => {
    const { hsm, privateKey } = await open()
    try {
      await signInTurn(hsm, privateKey, 5)
      // Each answer's continuation makes the next call: all of it in microtasks, but that every
      // 1 ms the next call waits for the loop to turn.
      const { inPlace, signed, turns } = await backToBack(hsm, privateKey, 1)
      assert.ok(inPlace >= 0.9 * signed, `${inPlace} of ${signed} in place`)
      assert.ok(turns >= 10, `${turns} timer turns in 300 ms of ${signed} signatures`)
    } finally {
      await hsm.close()
    }
  })

  test("a failure in place is handled as a worker's: CKR_DEVICE_ERROR once, and the call still succeeds", async () => {
    const { hsm, privateKey } = await open()
    try {
      await signInTurn(hsm, privateKey, 5)
      const before = control.countsSync()
      control.fail('C_Sign', 'CKR_DEVICE_ERROR', { count: 1 })
      assert.ok(verifies(await hsm.subtle.sign(params, privateKey, data)))
      const after = control.countsSync()
      assert.equal(after.injected - before.injected, 1)
      assert.ok(after.mainThreadSigns - before.mainThreadSigns >= 1, 'the failing call was made in place')
      // Concurrent calls go to the workers, and in place again once alone.
      const signatures = await Promise.all(Array.from({ length: 32 }, () => hsm.subtle.sign(params, privateKey, data)))
      assert.ok(signatures.every(verifies))
      assert.ok((await signInTurn(hsm, privateKey, 10)) >= 5)
    } finally {
      control.reset()
      await hsm.close()
    }
  })

  test('many calls in flight on a fast device: the main thread signs a share beside one worker fewer than cores, and the loop still turns', async () => {
    const { hsm, privateKey } = await open(ROOM)
    try {
      const before = control.countsSync().sessionsOpen
      await signInTurn(hsm, privateKey, 5)
      const { inPlace, signed, turns } = await backToBack(hsm, privateKey, 16)
      assert.ok(inPlace >= 0.1 * signed && inPlace < signed, `${inPlace} of ${signed} in place`)
      assert.ok(turns >= 10, `${turns} timer turns in 300 ms`)
      // The workers' sessions and the one in place; on a loaded machine the main thread may be found
      // busy (main-thread-load.ts) and start the last of the cores' workers: never more.
      const workers = control.countsSync().sessionsOpen - before - 1
      const fewer = Math.max(1, availableParallelism() - 1)
      assert.ok(workers === fewer || workers === availableParallelism(), `${workers} workers`)
    } finally {
      await hsm.close()
    }
  })

  test("inPlace: 'alone': with other calls under way, none is signed in place", async () => {
    const { hsm, privateKey } = await open({ inPlace: 'alone' })
    try {
      await signInTurn(hsm, privateKey, 5)
      const { inPlace, signed } = await backToBack(hsm, privateKey, 16)
      // Only a chain's last call may find itself alone.
      assert.ok(inPlace <= 16, `${inPlace} of ${signed} in place`)
    } finally {
      await hsm.close()
    }
  })

  test("without copies of keys (a hardware token's default), a worker a core and no signature beside them", async () => {
    const { hsm, privateKey } = await open({ ...ROOM, sessionKeyCopies: 'never' })
    try {
      const before = control.countsSync().sessionsOpen
      await signInTurn(hsm, privateKey, 5)
      const { inPlace, signed } = await backToBack(hsm, privateKey, 16)
      // Only a chain's last call may find itself alone.
      assert.ok(inPlace <= 16, `${inPlace} of ${signed} in place`)
      assert.equal(control.countsSync().sessionsOpen - before, availableParallelism() + 1, 'a worker a core, and the session in place')
    } finally {
      await hsm.close()
    }
  })

  test('decrypts waiting beside signatures get the worker the main thread stood in for', async () => {
    const { hsm, privateKey } = await open(ROOM)
    try {
      const before = control.countsSync().sessionsOpen
      const oaep = await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'oaep-beside' })
      await signInTurn(hsm, privateKey, 5)
      const secret = randomBytes(32)
      const sealed = await hsm.subtle.encrypt({ name: 'RSA-OAEP' }, oaep.publicKey, secret)
      let decrypts = 0
      const until = performance.now() + 300
      const decrypting = async () => {
        for (; performance.now() < until; decrypts++) assert.deepEqual(Buffer.from(await hsm.subtle.decrypt({ name: 'RSA-OAEP' }, oaep.privateKey, sealed)), secret)
      }
      await Promise.all([backToBack(hsm, privateKey, 16), decrypting(), decrypting()])
      assert.ok(decrypts > 0)
      assert.equal(control.countsSync().sessionsOpen - before, availableParallelism() + 1, 'a worker a core, and the session in place')
    } finally {
      await hsm.keys.delete({ label: 'oaep-beside' })
      await hsm.close()
    }
  })

  test('a main thread busy with other work leaves the signatures to a worker a core', async () => {
    const { hsm, privateKey } = await open(ROOM)
    try {
      const before = control.countsSync().sessionsOpen
      await signInTurn(hsm, privateKey, 5)
      // Other work holds the event loop nearly all the time: 5 ms at each of its turns.
      let spinning = true
      const spin = () => {
        for (const end = performance.now() + 5; performance.now() < end;);
        if (spinning) setImmediate(spin)
      }
      setImmediate(spin)
      const signing = backToBack(hsm, privateKey, 16, 600).finally(() => (spinning = false))
      // It is found busy after 150 ms of it.
      await new Promise((resolve) => setTimeout(resolve, 250))
      const settled = control.countsSync().mainThreadSigns
      const { signed } = await signing
      const late = control.countsSync().mainThreadSigns - settled
      assert.ok(late <= 8, `${late} signed in place once the main thread was found busy, of ${signed}`)
      assert.equal(control.countsSync().sessionsOpen - before, availableParallelism() + 1, 'a worker a core, and the session in place')
    } finally {
      await hsm.close()
    }
  })

  test("inPlace: 'always' (a process per core): concurrent calls run in place too, and the loop still turns", async () => {
    const { hsm, privateKey } = await open({ inPlace: 'always', maxSessions: 3 })
    try {
      await signInTurn(hsm, privateKey, 5)
      const { inPlace, signed, turns } = await backToBack(hsm, privateKey, 8)
      assert.ok(inPlace >= 0.9 * signed, `${inPlace} of ${signed} in place`)
      assert.ok(turns >= 10, `${turns} timer turns in 300 ms`)
    } finally {
      await hsm.close()
    }
  })

  test("refused decrypts leave Node's WebCrypto working (the module's OpenSSL errors stay off the main thread)", async () => {
    // SoftHSM binds to node's own OpenSSL: an error left on the main thread's queue aborts the
    // process at Node's next WebCrypto job. Decrypts, with input an attacker chooses, never run in place.
    const { hsm } = await open()
    try {
      const oaep = await hsm.keys.generate({ algorithm: 'RSA-OAEP', label: 'oaep' })
      const aes = await webcrypto.subtle.importKey('raw', randomBytes(32), 'AES-GCM', false, ['encrypt', 'decrypt'])
      const iv = randomBytes(12)
      const sealed = await webcrypto.subtle.encrypt({ name: 'AES-GCM', iv }, aes, Buffer.from('still here'))
      for (let i = 0; i < 20; i++) {
        await assert.rejects(hsm.subtle.decrypt({ name: 'RSA-OAEP' }, oaep.privateKey, randomBytes(256)), { name: 'OperationError' })
        assert.equal(Buffer.from(await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv }, aes, sealed)).toString(), 'still here')
      }
    } finally {
      await hsm.close()
    }
  })

  test('the device removed under signatures in place: they fail naming the code, then go on in place; no session is left open', async () => {
    const start = control.countsSync()
    const { hsm, privateKey } = await open({ timeout: 1000 })
    try {
      await signInTurn(hsm, privateKey, 5)
      control.removed(true)
      const failed = []
      for (let i = 0; i < 3; i++) {
        await hsm.subtle.sign(params, privateKey, data).catch((error) => failed.push(error.cause?.code))
      }
      assert.equal(failed.length, 3)
      for (const code of failed) assert.ok(['CKR_DEVICE_REMOVED', 'CKR_TOKEN_NOT_PRESENT'].includes(code), code)
      control.removed(false)
      // Once the token is found again (the reconnection polls), signatures succeed, in place again.
      let signed = false
      for (const until = performance.now() + 10_000; !signed && performance.now() < until;) {
        signed = await hsm.subtle.sign(params, privateKey, data).then(verifies, () => false)
        if (!signed) await new Promise((resolve) => setTimeout(resolve, 50))
      }
      assert.ok(signed, 'a signature after the return')
      assert.ok((await signInTurn(hsm, privateKey, 20)) >= 15)
    } finally {
      control.reset()
      await hsm.close()
    }
    const end = control.countsSync()
    assert.equal(end.sessionsOpened - start.sessionsOpened, end.sessionsClosed - start.sessionsClosed)
    assert.equal(end.sessionsOpen, start.sessionsOpen, 'no session left open')
  })

  test('close() closes the session in place too', async () => {
    const before = control.countsSync().sessionsOpen
    const { hsm, privateKey } = await open()
    assert.ok((await signInTurn(hsm, privateKey, 5)) >= 1, 'a session in place was open')
    await hsm.close()
    assert.equal(control.countsSync().sessionsOpen, before)
  })
})
