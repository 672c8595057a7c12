// RFC 7512 URIs and Java SunPKCS11 config files, parsed on src with no module and no token.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parsePkcs11Uri } from '../../src/config/pkcs11-uri.js'
import { parseJavaConfig } from '../../src/config/java-config.js'
import { ConfigurationError } from '../../src/errors.js'

test('a pkcs11: URI: path and query attributes, percent-decoded', () => {
  assert.deepEqual(parsePkcs11Uri('pkcs11:token=my%20token;id=%01%02;object=rsa;type=private?module-path=/usr/lib/x.so&pin-value=12%2034'), {
    token: 'my token',
    id: Buffer.from([1, 2]),
    object: 'rsa',
    type: 'private',
    modulePath: '/usr/lib/x.so',
    pinValue: '12 34',
  })
})

test('what is not a pkcs11: URI is a ConfigurationError', () => {
  for (const uri of ['http://x', 'pkcs11:id=%zz']) {
    assert.throws(
      () => parsePkcs11Uri(uri),
      (error: unknown) => error instanceof ConfigurationError && error.code === 'ERR_PKCS11_CONFIG',
      uri,
    )
  }
})

test('a Java SunPKCS11 config: name, library, slotListIndex', () => {
  assert.deepEqual(parseJavaConfig('name = X\nlibrary = /usr/lib/x.so\nslotListIndex = 1\n'), { name: 'X', library: '/usr/lib/x.so', slotListIndex: 1 })
})
