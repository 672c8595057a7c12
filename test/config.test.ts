// Module, token and PIN from options, Java SunPKCS11 config files (the Nimbus guide's example as it
// is), RFC 7512 URIs and the environment.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const softhsm = freshSoftHsm()
softhsm.initToken('first')
softhsm.initToken('second', '246810')
softhsm.pkcs11Tool(['--token-label', 'second', '--login', '--pin', '246810', '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'k2', '--id', '42'])
const { Pkcs11Crypto, parseJavaConfig, parsePkcs11Uri, ConfigurationError } = await import('pkcs11-webcrypto')

const opened = []
async function open(options) {
  const hsm = await Pkcs11Crypto.open(options)
  opened.push(hsm)
  return hsm
}
after(() => Promise.all(opened.map((hsm) => hsm.close())))

describe('Java SunPKCS11 config files', () => {
  test('parses the Nimbus guide example, comments and Java-only sections', () => {
    const text =
      '# Give the HSM device a name\nname = NitroKeyHSM\n\n# Path to the PKCS#11 driver\nlibrary = /usr/lib/x86_64-linux-gnu/\n\n# The HSM slot number\nslotListIndex = 1\n'
    assert.deepEqual(parseJavaConfig(text), { name: 'NitroKeyHSM', library: '/usr/lib/x86_64-linux-gnu/', slotListIndex: 1 })
    const withSections = 'name = x\nlibrary = "/opt/lib.so"\nslot = 0x10\nattributes(*,CKO_PRIVATE_KEY,*) = {\n  CKA_SIGN = true\n}\ndisabledMechanisms = { CKM_MD5 }\n'
    assert.deepEqual(parseJavaConfig(withSections), { name: 'x', library: '/opt/lib.so', slot: 16n })
    assert.throws(() => parseJavaConfig('library /x'), ConfigurationError)
    assert.throws(() => parseJavaConfig('slot = twelve'), ConfigurationError)
  })

  test("the guide's file as it is (library a directory, slotListIndex = 1) opens the token at index 1", async (t) => {
    const library = '/usr/lib/x86_64-linux-gnu/'
    if (!softhsm.module.startsWith('/usr/lib/')) return t.skip('not a Debian multiarch layout')
    const cfg = join(softhsm.dir, 'hsm-config.cfg')
    writeFileSync(cfg, `# Give the HSM device a name\nname = NitroKeyHSM\n\n# Path to the PKCS#11 driver\nlibrary = ${library}\n\n# The HSM slot number\nslotListIndex = 1\n`)
    const atIndex1 = await open({ config: cfg, pin: PIN, env: {} }).catch(() => open({ config: cfg, pin: '246810', env: {} }))
    const index1Label = softhsm.pkcs11Tool(['--list-slots']).match(/Slot 1 [^\n]*\n\s*token label\s*:\s*(\S+)/)[1]
    assert.equal(atIndex1.token.label, index1Label)
  })

  test('slot = id selects by slot id', async () => {
    const byLabel = await open({ library: softhsm.module, token: { label: 'first' }, pin: PIN })
    const cfg = join(softhsm.dir, 'by-slot.cfg')
    writeFileSync(cfg, `name = SoftHSM\nlibrary = ${softhsm.module}\nslot = ${byLabel.token.slotId}\n`)
    const bySlot = await open({ config: cfg, pin: PIN })
    assert.equal(bySlot.token.label, 'first')
  })
})

describe('RFC 7512 URIs', () => {
  test('parses path and query attributes with percent-encoding', () => {
    const uri = parsePkcs11Uri('pkcs11:token=My%20Token;id=%01%a2;object=rsa;type=private;x-vendor=1?module-path=/usr/lib/p.so&pin-value=12%2334')
    assert.deepEqual({ ...uri, id: uri.id.toString('hex') }, { token: 'My Token', id: '01a2', object: 'rsa', type: 'private', modulePath: '/usr/lib/p.so', pinValue: '12#34' })
    assert.throws(() => parsePkcs11Uri('http://x'), ConfigurationError)
    assert.throws(() => parsePkcs11Uri('pkcs11:id=%zz'), ConfigurationError)
    assert.throws(() => parsePkcs11Uri('pkcs11:type=bogus'), ConfigurationError)
  })

  test('opens a token from module-path, token and pin-value; keys by URI', async () => {
    const hsm = await open({ uri: `pkcs11:token=second?module-path=${softhsm.module}&pin-value=246810` })
    assert.equal(hsm.token.label, 'second')
    const key = await hsm.keys.get('pkcs11:token=second;id=%42;type=private')
    assert.equal(key.label, 'k2')
  })

  test('pin-source names a PIN file', async () => {
    const pinFile = join(softhsm.dir, 'pin.txt')
    writeFileSync(pinFile, '246810\n')
    const hsm = await open({
      uri: `pkcs11:serial=${(await open({ library: softhsm.module, token: { label: 'second' }, pin: '246810' })).token.serial}?module-path=${softhsm.module}&pin-source=file:${pinFile}`,
    })
    assert.equal(hsm.token.label, 'second')
  })
})

describe('the environment and selectors', () => {
  test('PKCS11_MODULE, PKCS11_TOKEN and PKCS11_PIN_FILE', async () => {
    const pinFile = join(softhsm.dir, 'pin-env.txt')
    writeFileSync(pinFile, `${PIN}\n`)
    const hsm = await open({ env: { PKCS11_MODULE: softhsm.module, PKCS11_TOKEN: 'first', PKCS11_PIN_FILE: pinFile } })
    assert.equal(hsm.token.label, 'first')
  })

  test('PKCS11_PIN; explicit options win over env', async () => {
    const hsm = await open({ token: { label: 'second' }, env: { PKCS11_MODULE: softhsm.module, PKCS11_TOKEN: 'first', PKCS11_PIN: '246810' } })
    assert.equal(hsm.token.label, 'second')
  })

  test('serial, slot index and slot id select the same token as its label', async () => {
    const byLabel = await open({ library: softhsm.module, token: { label: 'second' }, pin: '246810' })
    const index =
      softhsm
        .pkcs11Tool(['--list-slots'])
        .split(/\nSlot /)
        .findIndex((s) => /token label\s*:\s*second/.test(s)) - 1
    for (const token of [{ serial: byLabel.token.serial }, { slotId: byLabel.token.slotId }, { slotIndex: index }]) {
      assert.equal(
        (await open({ library: softhsm.module, token, pin: '246810' })).token.label,
        'second',
        JSON.stringify(token, (_, v) => (typeof v === 'bigint' ? String(v) : v)),
      )
    }
  })

  test('several tokens and none named: a clear error listing them', async () => {
    await assert.rejects(open({ library: softhsm.module, pin: PIN, env: {} }), {
      code: 'ERR_PKCS11_TOKEN_NOT_FOUND',
      message: /several tokens.*"first".*"second"|several tokens.*"second".*"first"/,
    })
  })

  test('an unreadable PIN file: ConfigurationError without its content', async () => {
    await assert.rejects(open({ library: softhsm.module, token: { label: 'first' }, pinFile: '/nonexistent/pin' }), { code: 'ERR_PKCS11_CONFIG', message: /ENOENT/ })
  })
})
