// The worker pool's service times (issue #13): one figure per kind of request, learnt from mixed
// batches, so that a microsecond AES call is not averaged with an RSA decryption.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ServiceTimes } from '../../src/pkcs11/dispatch/service-times.js'

const RSA = 1
const AES = 2

test('kinds timed alone, then together: each keeps its own time', () => {
  const times = new ServiceTimes()
  assert.equal(times.estimate(RSA), undefined)
  times.record([RSA], 2)
  times.record([AES, AES, AES, AES], 0.04)
  assert.equal(times.estimate(RSA), 2)
  assert.equal(times.estimate(AES), 0.01)
  // A mixed batch that took what its kinds predict changes neither.
  times.record([RSA, AES, AES], 2.02)
  assert.ok(Math.abs(times.estimate(RSA)! - 2) < 1e-9)
  assert.ok(Math.abs(times.estimate(AES)! - 0.01) < 1e-9)
  // A slower batch raises both in proportion.
  times.record([RSA, AES], 4.02)
  assert.ok(times.estimate(RSA)! > 2 && times.estimate(RSA)! < 4)
  assert.ok(times.estimate(AES)! > 0.01 && times.estimate(AES)! < 0.02)
})

test("a kind first seen in a mixed batch gets the known kinds' average as its guess, then its share", () => {
  const times = new ServiceTimes()
  times.record([RSA], 2)
  times.record([RSA, AES], 4)
  assert.equal(times.estimate(AES), 2)
  assert.equal(times.estimate(RSA), 2)
  // Then a batch of AES alone teaches its own time.
  for (let i = 0; i < 40; i++) times.record([AES, AES], 0.02)
  assert.ok(times.estimate(AES)! < 0.02, String(times.estimate(AES)))
  assert.equal(times.estimate(RSA), 2)
})

test('the overall figure says a slow device is slow', () => {
  const times = new ServiceTimes()
  times.record([RSA, RSA], 200)
  assert.equal(times.overall, 100)
  times.record([], 5)
  assert.equal(times.overall, 100)
})

test("a kind's fastest time leaves out its first batch and the slow ones after it, and one lucky batch does not hold it", () => {
  const times = new ServiceTimes()
  // The first batch opened a session and copied a key.
  times.record([AES, AES], 2.6)
  assert.equal(times.fastest(AES), undefined)
  times.record([AES, AES], 0.2)
  assert.equal(times.fastest(AES), 0.1)
  times.record([AES, AES], 1.4) // the machine was busy
  assert.ok(times.fastest(AES)! < 0.11, String(times.fastest(AES)))
  assert.ok(times.estimate(AES)! > 0.2)
  assert.equal(times.fastest(RSA), undefined)
  // An RSA signature that once took 0.45 ms takes 0.6 from then on.
  times.record([RSA], 2)
  times.record([RSA], 0.45)
  for (let i = 0; i < 20; i++) times.record([RSA], 0.6)
  assert.equal(times.fastest(RSA), 0.6)
})
