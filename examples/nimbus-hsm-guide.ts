/**
 * The Nimbus JOSE+JWT HSM guide, in TypeScript: load the token from the same Java-style
 * hsm-config.cfg, get a key by its id, sign a JWT with it through unmodified jose, verify it with
 * the public key of the certificate stored beside the key, and export the public JWK.
 *
 *   PKCS11_PIN=123456 node dist/examples/nimbus-hsm-guide.js [hsm-config.cfg] [rsaKeyId] [ecKeyId] [edKeyId]
 *
 * The guide does RS256; the same steps do ES256 and EdDSA.
 */
import { exportJWK, importX509, jwtVerify, SignJWT } from 'jose'
import { Pkcs11Crypto } from 'pkcs11-webcrypto'

const [configFile = 'hsm-config.cfg', ...keyIds] = process.argv.slice(2)
const userPin = process.env.PKCS11_PIN // the PIN to unlock the HSM

// Load the HSM, as Java's `new SunPKCS11(configFile)` does.
const hsm = await Pkcs11Crypto.open({ config: configFile, pin: userPin })
// jose reads globalThis.crypto: from now on, token keys sign on the token.
const uninstall = hsm.installGlobal()

try {
  for (const [keyID, alg] of [
    [keyIds[0] ?? '01', 'RS256'],
    [keyIds[1] ?? '02', 'ES256'],
    [keyIds[2] ?? '03', 'EdDSA'],
  ]) {
    // Get a handle to the private key for signing (hsmKeyStore.getKey(keyID, keyPin) in Java).
    const { privateKey, certificate } = await hsm.keys.get({ id: keyID }, { algorithm: alg })

    // We can now sign JWTs.
    const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg, kid: keyID }).sign(privateKey)

    // The public key from the certificate stored alongside the private key
    // (hsmKeyStore.getCertificate(keyID).getPublicKey() in Java), to verify the signature.
    if (!certificate) throw new Error(`key ${keyID} has no certificate on the token`)
    const publicKey = await importX509(certificate.toString('pem'), alg, { extractable: true })
    const { payload } = await jwtVerify(jwt, publicKey)

    // Export the public key as a JWK for clients (new RSAKey.Builder(publicKey).keyID(keyID).build()).
    const jwk = { ...(await exportJWK(publicKey)), kid: keyID }

    console.log(`${alg}: ${jwt}`)
    console.log(`  verified with the certificate's public key, sub=${String(payload.sub)}`)
    console.log(`  JWK: ${JSON.stringify(jwk)}`)
  }
} finally {
  uninstall()
  await hsm.close()
}
