// Importing the library leaves the global object alone: @peculiar/x509 and its reflect-metadata
// polyfill (which replaces members of the global Reflect) load only when a certificate is first
// read or made. Each test file runs in its own process, so this one starts with a clean Reflect.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const softhsm = freshSoftHsm()
softhsm.initToken('light')

test('import: no Reflect polyfill; the first certificate loads it', async () => {
  const reflectBefore = Object.getOwnPropertyNames(Reflect).sort()
  const { Pkcs11Crypto } = await import('pkcs11-webcrypto')
  assert.deepEqual(Object.getOwnPropertyNames(Reflect).sort(), reflectBefore)
  assert.equal('getMetadata' in Reflect, false)

  const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'light' }, pin: PIN })
  try {
    await hsm.keys.generate({ algorithm: 'ES256', label: 'plain' })
    assert.equal((await hsm.keys.get({ label: 'plain' })).certificate, undefined)
    assert.deepEqual(
      (await hsm.keys.list()).map((k) => k.certificate),
      [false],
    )
    assert.equal('getMetadata' in Reflect, false, 'keys without certificates need no x509')

    const { certificate } = await hsm.keys.generate({ algorithm: 'ES256', label: 'certified', certificate: { subject: 'CN=certified' } })
    assert.equal(certificate?.subject, 'CN=certified')
    assert.equal(typeof Reflect.getMetadata, 'function')
    assert.equal((await hsm.keys.get({ label: 'certified' })).certificate?.subject, 'CN=certified')
  } finally {
    await hsm.close()
  }
})
