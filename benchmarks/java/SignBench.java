// Signing throughput of Java's SunPKCS11 provider on a token: the Nimbus JOSE+JWT HSM guide's path.
// Run with the JDK's single-file source launcher:
//
//   java benchmarks/java/SignBench.java CONFIG PIN ALIAS ALG THREADS[,THREADS..] SECONDS WARMUP_SECONDS DATA
//
// ALG is RS256, PS256 or ES256 (ES256 as SHA256withECDSA: SoftHSM has raw CKM_ECDSA only, so the
// provider hashes in software, as the Node contenders do; its DER output is fine for throughput).
// Prints one JSON line per thread count: {"threads":..,"ops":..,"seconds":..,"p50Ms":..,"p99Ms":..,"errors":..}
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.Security;
import java.security.Signature;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

public class SignBench {
    public static void main(String[] a) throws Exception {
        Provider p11 = Security.getProvider("SunPKCS11").configure(a[0]);
        Security.addProvider(p11);
        KeyStore ks = KeyStore.getInstance("PKCS11", p11);
        ks.load(null, a[1].toCharArray());
        PrivateKey key = (PrivateKey) ks.getKey(a[2], null);
        if (key == null) throw new IllegalArgumentException("no private key " + a[2]);
        String alg = a[3];
        double seconds = Double.parseDouble(a[5]);
        double warmup = Double.parseDouble(a[6]);
        byte[] data = a[7].getBytes(StandardCharsets.UTF_8);
        for (String threads : a[4].split(",")) {
            int n = Integer.parseInt(threads);
            run(p11, key, alg, data, n, warmup, null);
            List<long[]> latencies = new ArrayList<>();
            long[] counts = run(p11, key, alg, data, n, seconds, latencies);
            long[] all = latencies.stream().flatMapToLong(Arrays::stream).toArray();
            Arrays.sort(all);
            System.out.printf("{\"threads\":%d,\"ops\":%d,\"seconds\":%.4f,\"p50Ms\":%.4f,\"p99Ms\":%.4f,\"errors\":%d%s}%n",
                n, counts[0], counts[2] / 1e9, percentile(all, 50), percentile(all, 99), counts[1],
                errorSample == null ? "" : ",\"errorSample\":\"" + errorSample.replace("\"", "'") + "\"");
        }
    }

    static volatile String errorSample;

    /** n threads sign back to back for `seconds`; returns {ops, errors, elapsed ns}. */
    static long[] run(Provider p11, PrivateKey key, String alg, byte[] data, int n, double seconds, List<long[]> latencies) throws Exception {
        long start = System.nanoTime();
        long end = start + (long) (seconds * 1e9);
        long[] ops = new long[n];
        long[] errors = new long[n];
        long[][] samples = new long[n][];
        AtomicReference<Exception> setupFailure = new AtomicReference<>();
        Thread[] workers = new Thread[n];
        for (int t = 0; t < n; t++) {
            final int i = t;
            workers[t] = new Thread(() -> {
                long[] mine = new long[1 << 16];
                int count = 0;
                try {
                    Signature signature = signature(alg, p11);
                    signature.initSign(key);
                    while (System.nanoTime() < end) {
                        long t0 = System.nanoTime();
                        try {
                            signature.update(data);
                            signature.sign(); // resets to the initSign state: ready for the next one
                            long took = System.nanoTime() - t0;
                            if (count == mine.length) mine = Arrays.copyOf(mine, count * 2);
                            mine[count++] = took;
                        } catch (Exception e) {
                            errors[i]++;
                            if (errorSample == null) errorSample = e.toString();
                            signature.initSign(key);
                        }
                    }
                } catch (Exception e) {
                    setupFailure.set(e);
                }
                ops[i] = count;
                samples[i] = Arrays.copyOf(mine, count);
            });
            workers[t].start();
        }
        for (Thread w : workers) w.join();
        long elapsed = System.nanoTime() - start;
        if (setupFailure.get() != null) throw setupFailure.get();
        if (latencies != null) latencies.addAll(Arrays.asList(samples));
        return new long[] { Arrays.stream(ops).sum(), Arrays.stream(errors).sum(), elapsed };
    }

    static Signature signature(String alg, Provider p11) throws Exception {
        switch (alg) {
            case "RS256": return Signature.getInstance("SHA256withRSA", p11);
            case "ES256": return Signature.getInstance("SHA256withECDSA", p11);
            case "PS256": {
                Signature s = Signature.getInstance("SHA256withRSASSA-PSS", p11);
                s.setParameter(new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1));
                return s;
            }
            default: throw new IllegalArgumentException("SignBench does not sign " + alg);
        }
    }

    static double percentile(long[] sorted, int p) {
        if (sorted.length == 0) return 0;
        int index = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, index)] / 1e6;
    }
}
