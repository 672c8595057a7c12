// npm run demo: a development token made on the spot (SoftHSM), keys generated on it by OpenSC's
// pkcs11-tool (they never leave it), and a JWT signed with each through unmodified jose.
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, jwtVerify, createLocalJWKSet } from 'jose'

const MODULE = ['/usr/lib/softhsm/libsofthsm2.so', '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so'].find(existsSync)
if (!MODULE) {
  console.error('demo: SoftHSM is not installed; run: sudo bash scripts/install-deps.sh')
  process.exit(2)
}
const home = process.env.PKCS11_WEBCRYPTO_HOME ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'pkcs11-webcrypto')
const conf = join(home, 'softhsm2.conf')
const PIN = '123456'
process.env.SOFTHSM2_CONF = conf
const tool = (...args) => execFileSync('pkcs11-tool', ['--module', MODULE, '--login', '--pin', PIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })

if (!existsSync(conf)) {
  mkdirSync(join(home, 'tokens'), { recursive: true })
  writeFileSync(conf, `directories.tokendir = ${join(home, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`)
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', 'dev', '--pin', PIN, '--so-pin', '12345678'], { stdio: 'ignore' })
  tool('--keypairgen', '--key-type', 'rsa:2048', '--label', 'dev-rs256', '--id', 'a1')
  tool('--keypairgen', '--key-type', 'EC:prime256v1', '--label', 'dev-es256', '--id', 'a2')
  tool('--keypairgen', '--key-type', 'EC:edwards25519', '--label', 'dev-eddsa', '--id', 'a3')
}
console.error(`demo: using the development token "dev" (SoftHSM, software only) in ${home}`)

const { Pkcs11Crypto } = await import('../dist/index.js')
const hsm = await Pkcs11Crypto.open({ library: MODULE, token: { label: 'dev' }, pin: PIN })
const uninstall = hsm.installGlobal()
try {
  const jwks = await hsm.jwks()
  const verifyWith = createLocalJWKSet(jwks)
  for (const [label, alg] of [['dev-rs256', 'RS256'], ['dev-es256', 'ES256'], ['dev-eddsa', 'EdDSA']]) {
    const { privateKey } = await hsm.keys.get({ label }, { algorithm: alg })
    const kid = jwks.keys.find((k) => k.alg === alg)?.kid
    const jwt = await new SignJWT({ sub: 'alice' })
      .setProtectedHeader({ alg, kid })
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey)
    const { payload } = await jwtVerify(jwt, verifyWith)
    console.log(`${alg} (key "${label}", verified: sub=${payload.sub})\n${jwt}\n`)
  }
  console.log(JSON.stringify(jwks, null, 2))
} finally {
  uninstall()
  await hsm.close()
}
