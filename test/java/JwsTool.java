// Independent JWS sign/verify helper for the test suite, built only on the JDK
// (java.security + SunPKCS11). Run with the single-file source launcher:
//
//   java test/java/JwsTool.java verify       <ALG> <spki-pem-file> <compact-jws>
//   java test/java/JwsTool.java verify-batch <file>   (lines: ALG \t spki-pem-path \t jws)
//   java test/java/JwsTool.java sign-p11     <sunpkcs11-cfg> <pin> <alias> <ALG> <payload-json>
//   java test/java/JwsTool.java verify-p11   <sunpkcs11-cfg> <pin> <alias> <ALG> <compact-jws>
//
// Exit codes: 0 success, 1 invalid signature ("invalid" on stdout) or other failure
// (message on stderr), 2 bad usage.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.Security;
import java.security.Signature;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.security.spec.X509EncodedKeySpec;
import java.util.Base64;
import java.util.List;

public class JwsTool {
    static class UsageException extends Exception {
        UsageException(String msg) { super(msg); }
    }

    public static void main(String[] args) {
        try {
            System.exit(run(args));
        } catch (UsageException e) {
            System.err.println("usage error: " + e.getMessage());
            System.exit(2);
        } catch (Exception e) {
            // Causes matter here: a wrong PIN is only "load failed" caused by CKR_PIN_INCORRECT.
            StringBuilder msg = new StringBuilder("error: " + e);
            for (Throwable c = e.getCause(); c != null; c = c.getCause()) msg.append("\n  caused by: ").append(c);
            System.err.println(msg);
            System.exit(1);
        }
    }

    static int run(String[] a) throws Exception {
        String cmd = a.length > 0 ? a[0] : "";
        switch (cmd) {
            case "verify": {
                need(a, 4);
                checkAlg(a[1]);
                return report(verify(a[1], readSpki(Path.of(a[2]), a[1]), a[3]));
            }
            case "verify-batch": {
                need(a, 2);
                List<String> lines = Files.readAllLines(Path.of(a[1]), StandardCharsets.UTF_8);
                StringBuilder out = new StringBuilder();
                for (String line : lines) {
                    if (line.isBlank()) continue;
                    String[] f = line.split("\t", -1);
                    if (f.length != 3) throw new UsageException("batch line needs 3 tab-separated fields: " + line);
                    checkAlg(f[0]);
                    out.append(verify(f[0], readSpki(Path.of(f[1]), f[0]), f[2]) ? "valid\n" : "invalid\n");
                }
                System.out.print(out);
                return 0;
            }
            case "sign-p11": {
                need(a, 6);
                checkAlg(a[4]);
                if (a[4].equals("EdDSA")) throw new UsageException("SunPKCS11 cannot sign EdDSA");
                Provider p11 = Security.getProvider("SunPKCS11").configure(a[1]);
                KeyStore ks = KeyStore.getInstance("PKCS11", p11);
                ks.load(null, a[2].toCharArray());
                PrivateKey key = (PrivateKey) ks.getKey(a[3], null);
                if (key == null) throw new Exception("no private key with alias " + a[3]
                        + " (SunPKCS11 only lists private keys that have a certificate beside them)");
                String input = b64(("{\"alg\":\"" + a[4] + "\"}").getBytes(StandardCharsets.UTF_8))
                        + "." + b64(a[5].getBytes(StandardCharsets.UTF_8));
                Signature s = signature(a[4], p11);
                s.initSign(key);
                s.update(input.getBytes(StandardCharsets.US_ASCII));
                System.out.println(input + "." + b64(s.sign()));
                return 0;
            }
            case "verify-p11": {
                need(a, 6);
                checkAlg(a[4]);
                Provider p11 = Security.getProvider("SunPKCS11").configure(a[1]);
                KeyStore ks = KeyStore.getInstance("PKCS11", p11);
                ks.load(null, a[2].toCharArray());
                var cert = ks.getCertificate(a[3]);
                if (cert == null) throw new Exception("no certificate with alias " + a[3]);
                return report(verify(a[4], cert.getPublicKey(), a[5]));
            }
            default:
                throw new UsageException("unknown command '" + cmd + "'; expected verify, verify-batch, sign-p11 or verify-p11");
        }
    }

    static void need(String[] a, int n) throws UsageException {
        if (a.length != n) throw new UsageException(a[0] + " takes " + (n - 1) + " arguments, got " + (a.length - 1));
    }

    static void checkAlg(String alg) throws UsageException {
        if (!alg.matches("(RS|PS|ES)(256|384|512)|EdDSA")) throw new UsageException("unsupported alg " + alg);
    }

    static int report(boolean valid) {
        System.out.println(valid ? "valid" : "invalid");
        return valid ? 0 : 1;
    }

    /** JCA Signature for a JWS alg; with a provider (SunPKCS11) the hashing happens on the token. */
    static Signature signature(String alg, Provider provider) throws Exception {
        if (alg.equals("EdDSA")) return Signature.getInstance("Ed25519");
        String bits = alg.substring(2);
        String sha = "SHA" + bits;
        switch (alg.substring(0, 2)) {
            case "RS":
                return provider == null ? Signature.getInstance(sha + "withRSA") : Signature.getInstance(sha + "withRSA", provider);
            case "ES": // JWS wants raw r||s, which is exactly the IEEE P1363 encoding
                return provider == null ? Signature.getInstance(sha + "withECDSAinP1363Format")
                        : Signature.getInstance(sha + "withECDSAinP1363Format", provider);
            default: { // PS: MGF1 with the same hash, salt length = hash length, trailer field 1
                Signature s = provider == null ? Signature.getInstance("RSASSA-PSS")
                        : Signature.getInstance(sha + "withRSASSA-PSS", provider);
                String hash = "SHA-" + bits;
                s.setParameter(new PSSParameterSpec(hash, "MGF1", new MGF1ParameterSpec(hash), Integer.parseInt(bits) / 8, 1));
                return s;
            }
        }
    }

    /** Anything wrong with the JWS itself (shape, base64, signature encoding) counts as invalid. */
    static boolean verify(String alg, PublicKey key, String jws) throws Exception {
        String[] parts = jws.trim().split("\\.", -1);
        if (parts.length != 3) return false;
        byte[] sig;
        try {
            sig = Base64.getUrlDecoder().decode(parts[2]);
        } catch (IllegalArgumentException e) {
            return false;
        }
        if (alg.startsWith("ES") && !curveMatches(alg, key)) {
            System.err.println(alg + " used with a key on another curve");
            return false;
        }
        Signature s = signature(alg, null);
        s.initVerify(key);
        s.update((parts[0] + "." + parts[1]).getBytes(StandardCharsets.US_ASCII));
        try {
            return s.verify(sig);
        } catch (java.security.SignatureException e) {
            return false;
        }
    }

    /** RFC 7518: ES256 is P-256 only, ES384 P-384, ES512 P-521. */
    static boolean curveMatches(String alg, PublicKey key) {
        if (!(key instanceof java.security.interfaces.ECPublicKey)) return false;
        int field = ((java.security.interfaces.ECPublicKey) key).getParams().getCurve().getField().getFieldSize();
        return field == (alg.equals("ES512") ? 521 : Integer.parseInt(alg.substring(2)));
    }

    static PublicKey readSpki(Path pem, String alg) throws Exception {
        String text = Files.readString(pem, StandardCharsets.US_ASCII);
        int begin = text.indexOf("-----BEGIN PUBLIC KEY-----");
        int end = text.indexOf("-----END PUBLIC KEY-----");
        if (begin < 0 || end < begin) throw new Exception(pem + ": no BEGIN/END PUBLIC KEY block");
        byte[] der = Base64.getMimeDecoder().decode(text.substring(begin + 26, end));
        String kty = alg.equals("EdDSA") ? "Ed25519" : alg.startsWith("ES") ? "EC" : "RSA";
        return KeyFactory.getInstance(kty).generatePublic(new X509EncodedKeySpec(der));
    }

    static String b64(byte[] b) {
        return Base64.getUrlEncoder().withoutPadding().encodeToString(b);
    }
}
