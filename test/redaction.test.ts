// No PIN in any output: URIs with a marker PIN, mistyped in many ways, go through every entry point
// that takes one (open, keys.get / delete, certificates.createCsr, the CLI's --uri and --key), and
// no piece of the marker may appear in any error's message, stack, util.inspect or JSON, nor in
// the CLI's stderr.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'

const TOKEN = 'redact'
const softhsm = freshSoftHsm()
softhsm.initToken(TOKEN)
softhsm.pkcs11Tool(['--token-label', TOKEN, '--login', '--pin', PIN, '--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'p256', '--id', '02'])
const { Pkcs11Crypto, parsePkcs11Uri, Pkcs11WebCryptoError } = await import('pkcs11-webcrypto')
const CLI = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))

/** A marker PIN made of pieces that are each distinctive: a piece anywhere in an output is a leak. */
function markerPin(separator) {
  const pieces = [0, 1, 2].map(() => `Mk${randomBytes(3).toString('hex')}`)
  return { pieces, pin: pieces.join(separator) }
}

const SEPARATORS = ['', '&', ';', '?', '=', '&x=', ' ', '#', '/', '%26', '&pin-value=']
const PIN_NAMES = ['pin-value', 'PIN-VALUE', 'pin_value', 'pinvalue', 'pin-source']
/** Ways to get a PIN into a URI, most of them wrong. */
const SHAPES = [
  (name, pin) => `pkcs11:token=${TOKEN};object=missing?${name}=${pin}`,
  (name, pin) => `pkcs11:token=${TOKEN}&${name}=${pin}?module-path=${softhsm.module}`,
  (name, pin) => `pkcs11:token=${TOKEN}?module-path=${softhsm.module};${name}=${pin}`,
  (name, pin) => `pkcs11:token=${TOKEN};${name}=${pin};object=p256`,
  (name, pin) => `pkcs11:object=missing;token=${TOKEN}?${name}=${pin}&${name}=${pin}`,
  (name, pin) => `pkcs11:token=nope?module-path=${softhsm.module}&${name}=${pin}`,
  (name, pin) => `pkcs11:token=${TOKEN}?module-path=/nonexistent/lib.so&${name}=${pin}`,
  (name, pin) => `pkcs11:slot-id=x;token=${TOKEN}?${name}=${pin}`,
  (name, pin) => `pkcs11:token=OTHER;object=p256?${name}=${pin}`,
  (name, pin) => `pkcs11:type=cert;object=p256?${name}=${pin}`,
  (name, pin) => `pkcs11:token=${TOKEN};object=p256?${name}=${pin}%zz`,
  (name, pin) => `pkcs11:${name}=${pin}`,
]

/** Every text a careless program could print of `error`. */
function outputsOf(error) {
  const texts = [String(error?.message), String(error?.stack), inspect(error, { depth: 8, showHidden: true }), JSON.stringify(error) ?? '']
  for (let cause = error?.cause; cause; cause = cause.cause) texts.push(String(cause.message), String(cause.stack))
  return texts
}

function assertNoPiece(texts, pieces, context) {
  for (const text of texts) {
    for (const piece of pieces) assert.ok(!text.includes(piece), `${context}: "${piece}" shown in:\n${text}`)
  }
}

const hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: TOKEN }, pin: PIN })
after(() => hsm.close())

describe('no PIN in any output', () => {
  test('library: every shape, PIN name and separator, through every entry point', async () => {
    let errors = 0
    for (const shape of SHAPES) {
      for (const name of PIN_NAMES) {
        for (const separator of SEPARATORS) {
          const { pieces, pin } = markerPin(separator)
          const uri = shape(name, pin)
          const attempts = [
            () => parsePkcs11Uri(uri),
            () => Pkcs11Crypto.open({ uri, env: {} }).then((opened) => opened.close()),
            () => Pkcs11Crypto.open({ library: `${softhsm.module};${name}=${pin}`, env: {} }),
            () => hsm.keys.get(uri),
            () => hsm.keys.delete(uri),
            () => hsm.certificates.createCsr(uri, { subject: 'CN=x' }),
          ]
          for (const attempt of attempts) {
            try {
              await attempt()
            } catch (error) {
              errors++
              assertNoPiece(outputsOf(error), pieces, uri)
            }
          }
        }
      }
    }
    // The shapes are wrong on purpose: nearly every attempt fails, so the assertions above ran.
    assert.ok(errors > SHAPES.length * PIN_NAMES.length * SEPARATORS.length * 4, `only ${errors} errors`)
  })

  test("the library's own errors are named and coded, and say which attribute is wrong", () => {
    const { pieces, pin } = markerPin('&')
    const error = (() => {
      try {
        parsePkcs11Uri(`pkcs11:token=t?pin-value=${pin}`)
      } catch (e) {
        return e
      }
    })()
    assert.ok(error instanceof Pkcs11WebCryptoError)
    assert.equal(error.code, 'ERR_PKCS11_CONFIG')
    assert.match(error.message, /after the PIN attribute/)
    assertNoPiece(outputsOf(error), pieces, 'parse')
  })

  test('CLI: --uri and --key with mistyped PINs never reach stderr', () => {
    const env = { ...softhsm.env }
    for (const name of ['pin-value', 'pin_value']) {
      for (const separator of ['&', ';', '?', ' ']) {
        const { pieces, pin } = markerPin(separator)
        const runs = [
          ['keys', '--uri', `pkcs11:token=${TOKEN}&${name}=${pin}?module-path=${softhsm.module}`],
          ['keys', '--uri', `pkcs11:token=${TOKEN}?module-path=${softhsm.module};${name}=${pin}`],
          ['keys', '--uri', `pkcs11:token=${TOKEN}?module-path=${softhsm.module}&${name}=12${separator}${pin}`],
          ['sign', '--key', `pkcs11:token=${TOKEN};object=missing?${name}=${pin}`, '--module', softhsm.module, '--token', TOKEN, '--pin', PIN],
        ]
        for (const args of runs) {
          const result = spawnSync(process.execPath, [CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 })
          assert.notEqual(result.status, 0, `${args.join(' ')} should fail`)
          assert.match(result.stderr, /^pkcs11-jwt: /)
          assertNoPiece([result.stderr, result.stdout], pieces, args.join(' '))
        }
      }
    }
  })
})
