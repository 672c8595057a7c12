// A request waiting for a signing worker settles once: a late answer after a timeout is dropped.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Pending } from '../../src/pkcs11/dispatch/pending.js'
import type { Operation } from '../../src/pkcs11/dispatch/protocol.js'

test('settles once, and counts the bytes it takes in a batch', () => {
  const answers: Array<Uint8Array | boolean | Error> = []
  const operation: Operation = { op: 'sign', mechanism: { mechanism: 0x1041 /* CKM_ECDSA */ }, data: new Uint8Array(10), outputLength: 64 }
  const options = { deadline: Number.POSITIVE_INFINITY, timeoutMs: 0 }
  const pending = new Pending(
    0,
    0,
    new Uint8Array(8),
    operation,
    options,
    (value) => answers.push(value),
    (error) => answers.push(error),
  )
  assert.equal(pending.size, 8 + 10 + 64)
  pending.answer(new Error('timeout'))
  pending.answer(new Uint8Array(64))
  assert.equal(pending.settled, true)
  assert.equal(answers.length, 1)
  assert.ok(answers[0] instanceof Error)
})
