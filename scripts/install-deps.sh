#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for pkcs11-webcrypto: SoftHSM 2 (the
# development and test token), OpenSC's pkcs11-tool, p11-kit, the OpenSSL PKCS#11 engine, GnuTLS's
# p11tool, a C compiler for the native binding, and the other real modules the tests run on: a
# software TPM 2.0 (swtpm) with tpm2-pkcs11, its tpm2_ptool and the tpm2-abrmd resource manager
# (on a private D-Bus bus), and NSS's softokn with certutil. Run as root; otherwise it prints the command.
set -euo pipefail

packages=(softhsm2 opensc opensc-pkcs11 p11-kit p11-kit-modules libengine-pkcs11-openssl gnutls-bin openssl build-essential python3
  libtpm2-pkcs11-1 tpm2-tools libtpm2-pkcs11-tools swtpm swtpm-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus libnss3 libnss3-tools)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all present (${packages[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: installed ${missing[*]}"
