// Issue #15: libraries other than jose, unmodified, with token keys. oauth4webapi (it checks
// `instanceof CryptoKey`) makes DPoP proofs and private_key_jwt client assertions, sent to a local
// server on 127.0.0.1 and verified there by jose; pkijs makes CMS SignedData that `openssl cms
// -verify` checks against the token's self-signed certificate.
import assert from 'node:assert/strict'
import { execFile as execFileCb } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { promisify } from 'node:util'
import * as asn1js from 'asn1js'
import * as jose from 'jose'
import * as oauth from 'oauth4webapi'
import * as pkijs from 'pkijs'
import { freshSoftHsm, PIN } from './helpers/softhsm.js'
import { provisionTestKeys } from './helpers/keys.js'

const execFile = promisify(execFileCb)
const softhsm = freshSoftHsm()
softhsm.initToken('libs')
provisionTestKeys(softhsm, 'libs')
const { Pkcs11Crypto } = await import('pkcs11-webcrypto')

const CLIENT_ID = 'hsm-client'
const ACCESS_TOKEN = 'access-token-42'
const now = () => Math.floor(Date.now() / 1000)

/** A token endpoint and a protected resource on 127.0.0.1 that keep every request they get. */
async function startServer() {
  const requests = []
  const server = createServer((request, response) => {
    let body = ''
    request.on('data', (chunk) => {
      body += chunk
    })
    request.on('end', () => {
      requests.push({ method: request.method, url: request.url, headers: request.headers, body })
      response.setHeader('content-type', 'application/json')
      response.setHeader('cache-control', 'no-store')
      if (request.url === '/token') response.end(JSON.stringify({ access_token: ACCESS_TOKEN, token_type: 'DPoP', expires_in: 60 }))
      else response.end(JSON.stringify({ ok: true }))
    })
  })
  // @ts-expect-error TS2769 (converted from JavaScript): No overload matches this call.
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'port' does not exist on type 'string | AddressInfo'.
  const issuer = `http://127.0.0.1:${server.address().port}`
  return { server, requests, issuer, as: { issuer, token_endpoint: `${issuer}/token` } }
}

/** jose verifies a DPoP proof with the JWK in its header; the claims are checked against what was sent. */
async function assertDpopProof(proof, { alg, thumbprint, htm, htu, accessToken, before: sentAfter }) {
  const { payload, protectedHeader } = await jose.jwtVerify(proof, jose.EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [alg] })
  assert.equal(protectedHeader.typ, 'dpop+jwt')
  assert.equal(protectedHeader.alg, alg)
  assert.equal(await jose.calculateJwkThumbprint(protectedHeader.jwk), thumbprint, "the header's JWK is the token key's public key")
  // @ts-expect-error TS2339 (converted from JavaScript): Property 'd' does not exist on type 'Omit<JWK, "priv" | "p" | "k" | "d" | "dp" | "dq" | "oth" | "q" | "qi">'.
  assert.equal(protectedHeader.jwk.d, undefined, 'no private member in the header')
  assert.equal(payload.htm, htm)
  assert.equal(payload.htu, htu)
  assert.ok(payload.iat >= sentAfter - 1 && payload.iat <= now() + 1, `iat ${payload.iat} is now`)
  assert.match(payload.jti, /^[\w-]{16,}$/)
  if (accessToken) assert.equal(payload.ath, createHash('sha256').update(accessToken).digest('base64url'))
  else assert.equal(payload.ath, undefined)
  return payload
}

describe('oauth4webapi: DPoP and private_key_jwt with token keys', () => {
  let hsm
  let uninstall
  let local
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'libs' }, pin: PIN })
    local = await startServer()
  })
  after(async () => {
    uninstall?.()
    local?.server.close()
    await hsm?.close()
  })

  // oauth4webapi names an Ed25519 key's JWS alg 'Ed25519' (RFC 9864), not 'EdDSA'.
  for (const [label, keyAlg, alg] of [
    ['p256', 'ES256', 'ES256'],
    ['rsa', 'PS256', 'PS256'],
    ['rsa', 'RS256', 'RS256'],
    ['ed25519', 'EdDSA', 'Ed25519'],
  ]) {
    test(`${alg}: a client_credentials grant with a private_key_jwt assertion and a DPoP proof, then a DPoP-bound resource request`, async () => {
      uninstall = hsm.installGlobal()
      try {
        const { privateKey, publicKey, id } = await hsm.keys.get({ label }, { algorithm: keyAlg })
        assert.ok(privateKey instanceof CryptoKey)
        const thumbprint = await jose.calculateJwkThumbprint(await jose.exportJWK(publicKey))
        const client = { client_id: CLIENT_ID }
        // @ts-expect-error TS2559 (converted from JavaScript): Type '{ client_id: string; }' has no properties in common with type 'Pick<Client, unique symbol>'.
        const dpop = oauth.DPoP(client, { privateKey, publicKey })
        const options = { DPoP: dpop, [oauth.allowInsecureRequests]: true }
        const sentAfter = now()
        local.requests.length = 0

        const response = await oauth.clientCredentialsGrantRequest(local.as, client, oauth.PrivateKeyJwt({ key: privateKey, kid: id }), { scope: 'api' }, options)
        const tokens = await oauth.processClientCredentialsResponse(local.as, client, response)
        assert.equal(tokens.access_token, ACCESS_TOKEN)
        const resource = await oauth.protectedResourceRequest(tokens.access_token, 'GET', new URL(`${local.issuer}/resource?x=1#f`), undefined, undefined, options)
        assert.equal(resource.status, 200)

        const [tokenRequest, resourceRequest] = local.requests
        // the client assertion (RFC 7523), verified by jose with the token key's public key
        const form = new URLSearchParams(tokenRequest.body)
        assert.equal(form.get('client_assertion_type'), 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
        assert.equal(form.get('client_id'), CLIENT_ID)
        const assertion = await jose.jwtVerify(form.get('client_assertion'), publicKey, {
          issuer: CLIENT_ID,
          subject: CLIENT_ID,
          audience: local.issuer,
          algorithms: [alg],
          requiredClaims: ['exp', 'jti'],
        })
        assert.equal(assertion.protectedHeader.kid, id)
        assert.ok(assertion.payload.exp > now() && assertion.payload.exp <= now() + 61, `exp ${assertion.payload.exp} is within a minute`)
        assert.match(assertion.payload.jti, /^[\w-]{16,}$/)
        // the DPoP proofs (RFC 9449): at the token endpoint, and at the resource with ath
        // @ts-expect-error TS2345 (converted from JavaScript): Argument of type '{ alg: string; thumbprint: string; htm: string; htu: any; before: number; }' is not assig...
        const first = await assertDpopProof(tokenRequest.headers.dpop, { alg, thumbprint, htm: 'POST', htu: local.as.token_endpoint, before: sentAfter })
        assert.equal(resourceRequest.headers.authorization, `DPoP ${ACCESS_TOKEN}`)
        const second = await assertDpopProof(resourceRequest.headers.dpop, {
          alg,
          thumbprint,
          htm: 'GET',
          htu: `${local.issuer}/resource`,
          accessToken: ACCESS_TOKEN,
          before: sentAfter,
        })
        assert.notEqual(first.jti, second.jti, 'each proof has its own jti')
        assert.notEqual(first.jti, assertion.payload.jti)
      } finally {
        uninstall()
        uninstall = undefined
      }
    })
  }

  test('without installGlobal(), oauth4webapi takes the key and the proof fails with the error that says what to do', async () => {
    const { privateKey, publicKey } = await hsm.keys.get({ label: 'p256' })
    // @ts-expect-error TS2353 (converted from JavaScript): Object literal may only specify known properties, and 'client_id' does not exist in type 'Pick<Client, uniq...
    const dpop = oauth.DPoP({ client_id: CLIENT_ID }, { privateKey, publicKey })
    local.requests.length = 0
    await assert.rejects(
      oauth.protectedResourceRequest(ACCESS_TOKEN, 'GET', new URL(`${local.issuer}/resource`), undefined, undefined, { DPoP: dpop, [oauth.allowInsecureRequests]: true }),
      { name: 'TypeError', code: 'ERR_PKCS11_TOKEN_KEY_TO_NODE', message: /hsm\.installGlobal\(\)/ },
    )
    assert.equal(local.requests.length, 0, 'nothing was sent')
  })
})

// CMS SignedData (RFC 5652) with signed attributes, content attached, built by pkijs.
const OID = { data: '1.2.840.113549.1.7.1', contentType: '1.2.840.113549.1.9.3', messageDigest: '1.2.840.113549.1.9.4' }

async function signedData(privateKey, certificateDer, content, hash) {
  const certificate = pkijs.Certificate.fromBER(certificateDer)
  const digest = createHash(hash.replace('-', '').toLowerCase()).update(content).digest()
  const cms = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: OID.data, eContent: new asn1js.OctetString({ valueHex: content }) }),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: certificate.issuer, serialNumber: certificate.serialNumber }),
        signedAttrs: new pkijs.SignedAndUnsignedAttributes({
          type: 0,
          attributes: [
            new pkijs.Attribute({ type: OID.contentType, values: [new asn1js.ObjectIdentifier({ value: OID.data })] }),
            new pkijs.Attribute({ type: OID.messageDigest, values: [new asn1js.OctetString({ valueHex: digest })] }),
          ],
        }),
      }),
    ],
    certificates: [certificate],
  })
  await cms.sign(privateKey, 0, hash)
  const info = new pkijs.ContentInfo({ contentType: pkijs.ContentInfo.SIGNED_DATA, content: cms.toSchema(true) })
  return { cms, der: Buffer.from(info.toSchema().toBER(false)) }
}

/** `openssl cms -verify`, the certificate as the only trust anchor: exit code, content out, what it says. */
async function opensslCmsVerify(dir, der, certificatePem) {
  const input = join(dir, 'signed.der')
  const ca = join(dir, 'ca.pem')
  writeFileSync(input, der)
  writeFileSync(ca, certificatePem)
  try {
    const { stdout, stderr } = await execFile('openssl', ['cms', '-verify', '-inform', 'DER', '-in', input, '-CAfile', ca, '-binary'], { encoding: 'buffer' })
    return { code: 0, content: stdout, said: stderr.toString() }
  } catch (error) {
    return { code: error.code, content: error.stdout, said: error.stderr.toString() }
  }
}

describe('pkijs: CMS SignedData with token keys, verified by openssl cms -verify', () => {
  let hsm
  let dir
  const signers = {}
  before(async () => {
    hsm = await Pkcs11Crypto.open({ library: softhsm.module, token: { label: 'libs' }, pin: PIN })
    dir = mkdtempSync(join(tmpdir(), 'p11wc-cms-'))
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'ES256' does not exist on type '{}'.
    signers.ES256 = await hsm.keys.generate({ algorithm: 'ES256', label: 'cms-ec', certificate: { subject: 'CN=cms-ec' } })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'RS256' does not exist on type '{}'.
    signers.RS256 = await hsm.keys.generate({ algorithm: 'RS256', label: 'cms-rsa', certificate: { subject: 'CN=cms-rsa' } })
    // @ts-expect-error TS2339 (converted from JavaScript): Property 'PS256' does not exist on type '{}'.
    signers.PS256 = { ...signers.RS256, ...(await hsm.keys.get({ label: 'cms-rsa' }, { algorithm: 'PS256' })) }
  })
  after(async () => {
    pkijs.setEngine('reset')
    await hsm?.close()
  })

  // The engine set-ups the README shows. pkijs's default engine was built from globalThis.crypto at
  // import, before any installGlobal(): it is Node's, and cannot use token keys.
  const ENGINES = [
    [
      'new CryptoEngine({ name, crypto: hsm })',
      () => {
        pkijs.setEngine('hsm', new pkijs.CryptoEngine({ name: 'hsm', crypto: hsm }))
      },
    ],
    [
      'setEngine(name, hsm, hsm.subtle)',
      () => {
        pkijs.setEngine('hsm', hsm, hsm.subtle)
      },
    ],
    [
      'installGlobal(), then new CryptoEngine({ name, crypto: globalThis.crypto })',
      () => {
        const uninstall = hsm.installGlobal()
        pkijs.setEngine('routed', new pkijs.CryptoEngine({ name: 'routed', crypto: globalThis.crypto }))
        return uninstall
      },
    ],
  ]

  for (const [setup, install] of ENGINES) {
    for (const alg of ['ES256', 'RS256', 'PS256']) {
      test(`${alg}, ${setup}`, async () => {
        // @ts-expect-error TS2349 (converted from JavaScript): This expression is not callable.
        const uninstall = install()
        try {
          const { privateKey, certificate } = signers[alg]
          const content = Buffer.from(`signed on the token with ${alg} through pkijs (${setup})`)
          const { der } = await signedData(privateKey, certificate.rawData, content, 'SHA-256')
          const good = await opensslCmsVerify(dir, der, certificate.toString('pem'))
          assert.equal(good.code, 0, good.said)
          assert.match(good.said, /^CMS Verification successful$/m)
          assert.deepEqual(good.content, content, 'openssl gives back the signed content')

          const tampered = Buffer.from(der)
          const at = tampered.indexOf(content)
          assert.ok(at > 0)
          tampered[at] ^= 0x20 // 's' -> 'S'
          const bad = await opensslCmsVerify(dir, tampered, certificate.toString('pem'))
          assert.notEqual(bad.code, 0, 'openssl refuses changed content')
          assert.match(bad.said, /Verification failure/)
          assert.match(bad.said, /digest failure|content verify error/i)
          assert.doesNotMatch(bad.said, /successful/)
        } finally {
          uninstall?.()
        }
      })
    }
  }

  test('with the routed global, pkijs verifies what it signed (public keys are imported by Node, not onto the token)', async () => {
    const uninstall = hsm.installGlobal()
    try {
      pkijs.setEngine('routed', new pkijs.CryptoEngine({ name: 'routed', crypto: globalThis.crypto }))
      const objects = (await hsm.keys.list()).length
      // @ts-expect-error TS2339 (converted from JavaScript): Property 'ES256' does not exist on type '{}'.
      const { privateKey, certificate } = signers.ES256
      const { der } = await signedData(privateKey, certificate.rawData, Buffer.from('round trip'), 'SHA-256')
      const cms = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(der).content })
      assert.equal((await cms.verify({ signer: 0, checkChain: false, extendedMode: true })).signatureVerified, true)
      assert.equal((await hsm.keys.list()).length, objects, 'verifying made no object on the token')
    } finally {
      uninstall()
    }
  })
})
