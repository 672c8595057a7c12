// The two grammars users write by hand, as their standards say: RFC 7512 pkcs11: URIs (and what a
// key URI selects on a real token), and Java SunPKCS11 config files. Every refusal is a
// ConfigurationError that names the attribute and never shows a PIN.
import assert from 'node:assert/strict'
import { homedir, tmpdir } from 'node:os'
import { after, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const TOKEN = 'parse'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'p256', '--id', '02'])
const { Pkcs11Crypto, parsePkcs11Uri, parseJavaConfig, ConfigurationError, KeyNotFoundError } = await import('pkcs11-webcrypto')

/** A ConfigurationError whose message matches `pattern` and holds no `secret`. */
const refused =
  (pattern, secret = '9876') =>
  (e) =>
    e instanceof ConfigurationError && pattern.test(e.message) && !e.message.includes(secret)

describe('RFC 7512 URIs', () => {
  test('a "?" inside a query value is part of it; the path ends at the first "?"', () => {
    assert.equal(parsePkcs11Uri('pkcs11:token=a?pin-value=12?34&module-path=/m.so').pinValue, '12?34')
    assert.equal(parsePkcs11Uri('pkcs11:token=a?module-path=/x?y.so').modulePath, '/x?y.so')
    assert.equal(parsePkcs11Uri('pkcs11:token=a%3Fb').token, 'a?b')
  })

  test('percent-encoding decodes to bytes (ids) and UTF-8 (labels); a bad escape names its attribute', () => {
    const uri = parsePkcs11Uri('pkcs11:object=caf%C3%A9;id=%00%ff')
    assert.equal(uri.object, 'café')
    assert.equal(uri.id.toString('hex'), '00ff')
    assert.throws(() => parsePkcs11Uri('pkcs11:object=%4'), refused(/percent-encoding in "object"/))
  })

  test('an attribute given twice is refused, in the path and in the query', () => {
    assert.throws(() => parsePkcs11Uri('pkcs11:token=a;token=b'), refused(/"token" is given twice/))
    assert.throws(() => parsePkcs11Uri('pkcs11:token=a?pin-value=1234&pin-value=9876'), refused(/the PIN attribute is given twice/))
  })

  test('slot-id is a decimal number: "x", "", "0x1" and "-1" are refused by name', () => {
    assert.equal(parsePkcs11Uri('pkcs11:slot-id=1234567890123').slotId, 1234567890123n)
    for (const bad of ['x', '', '0x1', '-1', ' 1']) assert.throws(() => parsePkcs11Uri(`pkcs11:slot-id=${bad}`), refused(/slot-id must be a decimal number/))
  })

  test('a mistyped PIN is never quoted: pin-value=12&9876', () => {
    assert.throws(() => parsePkcs11Uri('pkcs11:token=t?pin-value=12&9876'), refused(/after the PIN attribute/))
    assert.throws(() => parsePkcs11Uri('pkcs11:token=t;pin-value=12?9876'), refused(/after the PIN attribute/))
    assert.throws(() => parsePkcs11Uri('pkcs11:type=x9876'), refused(/type must be one of/))
  })
})

describe('key URIs on a token', () => {
  const opened = Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
  after(async () => (await opened).close())

  test('token=, serial=, slot-id= naming another token select nothing here', async () => {
    const hsm = await opened
    assert.equal((await hsm.keys.get(`pkcs11:token=${TOKEN};object=p256`)).id, '02')
    for (const other of ['token=OTHER', 'serial=0000', 'model=HSM9000', `slot-id=${hsm.token.slotId + 1n}`]) {
      await assert.rejects(hsm.keys.get(`pkcs11:${other};object=p256`), (e) => e instanceof KeyNotFoundError && /not this token's/.test(e.message))
    }
  })

  test('type= is honoured: cert, public and data are not the private key; private and secret-key narrow the search', async () => {
    const hsm = await opened
    for (const type of ['cert', 'public', 'data']) {
      await assert.rejects(hsm.keys.get(`pkcs11:object=p256;type=${type}`), (e) => e instanceof KeyNotFoundError && new RegExp(`a ${type} object`).test(e.message))
      await assert.rejects(hsm.keys.delete(`pkcs11:object=p256;type=${type}`), KeyNotFoundError)
    }
    assert.equal((await hsm.keys.get('pkcs11:object=p256;type=private')).id, '02')
    await assert.rejects(hsm.keys.get('pkcs11:object=p256;type=secret-key'), /no usable private or secret key/)
  })
})

describe('Java SunPKCS11 configs', () => {
  test('${...} in library expands Java system properties; unknown ones (and the environment) are refused by name', () => {
    assert.equal(parseJavaConfig('library = ${user.home}/lib.so').library, `${homedir()}/lib.so`)
    assert.equal(parseJavaConfig('library = ${java.io.tmpdir}/a${file.separator}b.so').library, `${tmpdir()}/a/b.so`)
    assert.equal(parseJavaConfig('library = ${user.dir}/x.so').library, `${process.cwd()}/x.so`)
    assert.throws(() => parseJavaConfig('name = x\nlibrary = ${HOME}/lib.so'), refused(/config:2: library uses \$\{HOME\}/))
    assert.throws(() => parseJavaConfig('library = ${java.home}/lib.so'), refused(/\$\{java\.home\}/))
  })

  test('quoted values keep "#", escapes and blanks; an unclosed quote is refused', () => {
    assert.equal(parseJavaConfig('library = "/opt/my#lib/p11.so" # comment').library, '/opt/my#lib/p11.so')
    assert.equal(parseJavaConfig('description = "a \\"b\\" c"').description, 'a "b" c')
    assert.throws(() => parseJavaConfig('library = "/opt/x'), refused(/library has no closing quote/))
  })

  test('braces only open the sections that take them; other lines are read as they are', () => {
    const text = 'description = a { b\nname = after\nlibrary = /l.so\nattributes(*,CKO_PRIVATE_KEY,*) = {\n  CKA_SIGN = true\n}\ndisabledMechanisms = {\n CKM_MD5\n}\nslot = 1\n'
    assert.deepEqual(parseJavaConfig(text), { description: 'a { b', name: 'after', library: '/l.so', slot: 1n })
    assert.throws(() => parseJavaConfig('name = { x }'), refused(/name takes a value/))
    assert.throws(() => parseJavaConfig('attributes = {\n CKA_SIGN = true\n'), refused(/not closed/))
  })

  test('empty values, repeated attributes, and slot with slotListIndex are refused by name', () => {
    assert.throws(() => parseJavaConfig('slot ='), refused(/slot has no value/))
    assert.throws(() => parseJavaConfig('library = # nothing'), refused(/library has no value/))
    assert.throws(() => parseJavaConfig('name = a\nname = b'), refused(/config:2: name is given twice/))
    assert.throws(() => parseJavaConfig('slot = 1\nslotListIndex = 0'), refused(/slot and slotListIndex/))
    assert.throws(() => parseJavaConfig('slot = 0o7'), refused(/slot must be an integer/))
    assert.equal(parseJavaConfig('slot = 0x10').slot, 16n)
  })
})
