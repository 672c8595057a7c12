// Independent checks of decrypting and deriving with token keys, built only on the JDK
// (javax.crypto + SunPKCS11). Run with the single-file source launcher:
//
//   java test/java/JweTool.java ecdh-p11 <sunpkcs11-cfg> <pin> <alias> <peer-spki-der-hex>   -> Z in hex
//   java test/java/JweTool.java gcm-p11  <sunpkcs11-cfg> <pin> <alias> <iv-hex> <aad-hex> <plaintext-hex>  -> ciphertext||tag in hex
//
// Exit codes: 0 success, 1 failure (message on stderr), 2 bad usage.

import java.security.Key;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.Security;
import java.security.spec.X509EncodedKeySpec;
import java.util.HexFormat;
import javax.crypto.Cipher;
import javax.crypto.KeyAgreement;
import javax.crypto.spec.GCMParameterSpec;

public class JweTool {
    public static void main(String[] args) {
        try {
            if (args.length < 4) {
                System.err.println("usage: ecdh-p11|gcm-p11 <cfg> <pin> <alias> ...");
                System.exit(2);
            }
            Provider provider = Security.getProvider("SunPKCS11").configure(args[1]);
            KeyStore store = KeyStore.getInstance("PKCS11", provider);
            store.load(null, args[2].toCharArray());
            Key key = store.getKey(args[3], null);
            if (key == null) throw new IllegalStateException("no key with alias " + args[3]);
            HexFormat hex = HexFormat.of();
            switch (args[0]) {
                case "ecdh-p11" -> {
                    PublicKey peer = KeyFactory.getInstance("EC").generatePublic(new X509EncodedKeySpec(hex.parseHex(args[4])));
                    KeyAgreement agreement = KeyAgreement.getInstance("ECDH", provider);
                    agreement.init((PrivateKey) key);
                    agreement.doPhase(peer, true);
                    System.out.println(hex.formatHex(agreement.generateSecret()));
                }
                case "gcm-p11" -> {
                    Cipher cipher = Cipher.getInstance("AES/GCM/NoPadding", provider);
                    cipher.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(128, hex.parseHex(args[4])));
                    cipher.updateAAD(hex.parseHex(args[5]));
                    System.out.println(hex.formatHex(cipher.doFinal(hex.parseHex(args[6]))));
                }
                default -> {
                    System.err.println("unknown command " + args[0]);
                    System.exit(2);
                }
            }
        } catch (Exception e) {
            Throwable cause = e;
            StringBuilder message = new StringBuilder(String.valueOf(e));
            while ((cause = cause.getCause()) != null) message.append(" <- ").append(cause);
            System.err.println(message);
            System.exit(1);
        }
    }
}
