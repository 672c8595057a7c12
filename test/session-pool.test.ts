// The lookup session pool against a module initialized again (p11-kit's client after its server
// died numbers its sessions from 1 again): a handle from before may name another caller's new
// session, so it is forgotten, never lent or closed. The "initialization" is counted by hand here,
// on a real SoftHSM, so that the old handle still exists and a close of it would show.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import pkcs11js from 'pkcs11js'
import { freshSoftHsm } from './helpers/softhsm.js'

const LABEL = 'pool'
const softhsm = freshSoftHsm()
softhsm.initToken(LABEL)
const { SessionPool } = await import('../dist/pkcs11/session-pool.js')

describe('sessions from before the module was initialized again', () => {
  const p11 = new pkcs11js.PKCS11()
  let slot
  let generation = 0
  const isOpen = (session) => {
    try {
      p11.C_GetSessionInfo(session)
      return true
    } catch {
      return false
    }
  }

  before(() => {
    p11.load(softhsm.module)
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK })
    slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === LABEL)
  })
  after(() => {
    p11.C_Finalize()
    p11.close()
  })

  test('a session borrowed across the new initialization is not closed on its return, nor lent again', async () => {
    const pool = new SessionPool(p11, slot, 2, () => generation)
    const old = await pool.withSession((session) => {
      generation++
      return session
    })
    assert.ok(isOpen(old), "the old handle was closed: under p11-kit it could have been another caller's session")
    const next = await pool.withSession((session) => session)
    assert.notDeepEqual(next, old)
    assert.equal(pool.openSessions, 1)
    await pool.close()
    assert.ok(!isOpen(next), 'a current session is closed at close()')
    p11.C_CloseSession(old)
  })

  test('an idle session from before is skipped by withSession, withSessionSync and stillValid', async () => {
    const pool = new SessionPool(p11, slot, 2, () => generation)
    const old = await pool.withSession((session) => session)
    assert.equal(pool.stillValid(), true)
    generation++
    assert.equal(pool.stillValid(), false)
    assert.notDeepEqual(
      pool.withSessionSync((session) => session),
      old,
    )
    assert.notDeepEqual(await pool.withSession((session) => session), old)
    assert.ok(isOpen(old), 'the old handle was closed')
    await pool.close()
    p11.C_CloseSession(old)
  })
})
