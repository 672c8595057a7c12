#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for pkcs11-webcrypto, and nothing when all is
# present (no apt call, no network). `npm run demo` runs it with `demo` (SoftHSM 2, the development
# token), `npm test` with `test` (the default): SoftHSM 2, OpenSC's pkcs11-tool and pkcs11-spy,
# p11-kit, the OpenSSL PKCS#11 engine, GnuTLS's p11tool, a C compiler (the native binding, the
# fault-injecting module), a JDK (SunPKCS11, keytool), ps, and the other real modules the tests run
# on: a software TPM 2.0 (swtpm) with tpm2-pkcs11, its tpm2_ptool and the tpm2-abrmd resource
# manager (on a private D-Bus bus), and NSS's softokn with certutil.
# As root it installs what is missing; otherwise it prints the apt-get command and exits 2.
set -euo pipefail

profile=${1:-test}
packages=(softhsm2 opensc opensc-pkcs11 p11-kit p11-kit-modules libengine-pkcs11-openssl gnutls-bin openssl build-essential python3
  libtpm2-pkcs11-1 tpm2-tools libtpm2-pkcs11-tools swtpm swtpm-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus libnss3 libnss3-tools)
packages+=(openjdk-17-jdk-headless procps)
case "$profile" in
  test) ;;
  demo) packages=(softhsm2) ;;
  *) echo "install-deps: unknown profile '$profile' (demo or test)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: $profile needs ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 2
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: installed ${missing[*]}" >&2
