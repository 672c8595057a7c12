/**
 * `pkcs11-jwt demo` (`npm run demo`): on the development token (or the one named), makes the RSA,
 * EC and Ed25519 keys with certificates when missing, signs a JWT with each through unmodified
 * jose, verifies each against the token's JWKS, and prints the JWTs and the JWKS.
 */
import type { Command } from 'commander'
import { publishedJwk } from '../../index.js'
import { DEV_KEYS, ensureDevKeys } from '../dev-token.js'
import { printJson, printLine } from '../output.js'
import { addTokenOptions, withToken, type TokenFlags } from '../token-options.js'
import type { CliIo } from '../io.js'

export function register(program: Command, io: CliIo): void {
  addTokenOptions(program.command('demo'))
    .description('sign and verify a JWT with an RSA, an EC and an Ed25519 key on the token (made when missing)')
    .addHelpText('after', '\nExample:\n  $ npm run demo            # the built-in development token\n  $ pkcs11-jwt demo --token mytoken --pin-file pin.txt\n')
    .action(async (flags: TokenFlags) => {
      const { SignJWT, createLocalJWKSet, jwtVerify } = await import('jose')
      await withToken(flags, io, async (hsm) => {
        await ensureDevKeys(hsm)
        const jwks = await hsm.jwks()
        const verifier = createLocalJWKSet(jwks)
        const uninstall = hsm.installGlobal()
        try {
          for (const { label, alg } of DEV_KEYS) {
            const key = await hsm.keys.get({ label }, { algorithm: alg })
            const { kid } = await publishedJwk(key, alg)
            const jwt = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg, kid }).setIssuedAt().setExpirationTime('1h').sign(key.privateKey)
            const { payload } = await jwtVerify(jwt, verifier)
            printLine(io.stdout, `${alg} with "${label}" (certificate ${key.certificate?.subject ?? 'none'}): verified, sub=${String(payload.sub)}`)
            printLine(io.stdout, jwt)
            printLine(io.stdout, '')
          }
        } finally {
          uninstall()
        }
        printJson(io.stdout, jwks)
      })
    })
}
