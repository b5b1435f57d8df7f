#!/usr/bin/env bash
# Installs the Debian packages and starts the services that `make test` needs,
# when they are missing. Safe to run repeatedly; fails loudly if it cannot.
set -euo pipefail

# command-that-must-exist  debian-package
need=(
  "gcc gcc"
  "bsdiff bsdiff"
  "bspatch bsdiff"
  "xdelta3 xdelta3"
  "zstd zstd"
  "xz xz-utils"
  "openssl openssl"
  "softhsm2-util softhsm2"
  "/usr/share/python3-intelhex/hexinfo.py python3-intelhex"
  "node nodejs"
  "chromium chromium"
  "swupdate swupdate"
  "mender mender-client"
  "mender-artifact mender-artifact"
  "unshare util-linux"
)

missing=()
for pair in "${need[@]}"; do
  set -- $pair
  command -v "$1" >/dev/null 2>&1 || missing+=("$2")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "test-deps: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  export DEBIAN_FRONTEND=noninteractive
  # policy-rc.d keeps Debian's maintainer scripts from starting system services.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u)
fi
for pair in "${need[@]}"; do
  set -- $pair
  command -v "$1" >/dev/null 2>&1 || { echo "test-deps: $1 still missing after install" >&2; exit 1; }
done

# The C applier's tests (delta/c/ctest) build with ASan/UBSan: their runtimes
# ship with Debian's gcc (libgcc-12-dev); install them if a build fails.
if ! echo 'int main(void){return 0;}' | gcc -x c -fsanitize=address,undefined -o /dev/null - >/dev/null 2>&1; then
  echo "test-deps: installing libasan8 libubsan1"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libasan8 libubsan1
  echo 'int main(void){return 0;}' | gcc -x c -fsanitize=address,undefined -o /dev/null - \
    || { echo "test-deps: gcc cannot build with -fsanitize=address,undefined" >&2; exit 1; }
fi
