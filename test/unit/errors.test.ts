// Error mapping: library errors to the spec's WebCrypto names; CLI messages and exit codes.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { asSpecError } from '../../src/webcrypto/errors.js'
import { ConfigurationError, KeyNotFoundError, TokenError, type ErrorCode } from '../../src/errors.js'
import { describeError, rememberSecret, scrub, UsageError, EXIT_FAILED, EXIT_USAGE } from '../../src/cli/errors.js'

test("asSpecError: TypeErrors and spec DOMExceptions pass; Node 20's misspelling is renamed; the rest is an OperationError", () => {
  const type = new TypeError('bad')
  assert.equal(asSpecError(type), type)
  const data = new DOMException('x', 'DataError')
  assert.equal(asSpecError(data), data)
  const renamed = asSpecError(new DOMException('no', 'InvalidAccessException'))
  assert.ok(renamed instanceof DOMException && renamed.name === 'InvalidAccessError' && renamed.message === 'no')
  const token = new TokenError('CKR_DEVICE_ERROR', 0x30, 'C_Sign')
  const operation = asSpecError(token)
  assert.ok(operation instanceof DOMException && operation.name === 'OperationError')
  assert.equal((operation as DOMException & { cause?: unknown }).cause, token)
  assert.match(operation.message, /C_Sign failed: CKR_DEVICE_ERROR/)
})

test("error codes are typed: a TokenError's is a CKR_ name", () => {
  const codes: ErrorCode[] = [new TokenError('CKR_PIN_INCORRECT', 0xa0, 'C_Login').code, new KeyNotFoundError('x').code]
  assert.deepEqual(codes, ['CKR_PIN_INCORRECT', 'ERR_PKCS11_KEY_NOT_FOUND'])
})

test('describeError: one line, the exit code of the cause, a PIN hint, no secret', () => {
  rememberSecret('s3cret-pin')
  assert.deepEqual(describeError(new UsageError('give --key')), { message: 'give --key', exitCode: EXIT_USAGE })
  assert.deepEqual(describeError(new ConfigurationError('no module s3cret-pin')), { message: 'no module ****', exitCode: EXIT_USAGE })
  assert.deepEqual(describeError(new TokenError('CKR_PIN_INCORRECT', 0xa0, 'C_Login')), { message: 'C_Login failed: CKR_PIN_INCORRECT (wrong PIN)', exitCode: EXIT_FAILED })
  const wrapped = new DOMException('the token could not complete the operation', 'OperationError')
  Object.defineProperty(wrapped, 'cause', { value: new TokenError('CKR_DEVICE_REMOVED', 0x32, 'C_Sign') })
  assert.match(describeError(wrapped).message, /^OperationError: .*\(C_Sign failed: CKR_DEVICE_REMOVED\)$/)
  assert.equal(scrub('line one\n  line two s3cret-pin'), 'line one line two ****')
})
