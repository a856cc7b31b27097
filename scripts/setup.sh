#!/usr/bin/env bash
# Set up everything micronets needs on Debian 12 with CPython 3.11, idempotently:
#  - Debian packages: g++ (host builds), the Cortex-M cross toolchain with newlib, QEMU (emulated
#    Cortex-M4 runs), the Xtensa compiler (compile-only checks), Fashion-MNIST (benchmark images),
#    PostgreSQL (the search's distributed-storage test starts its own server);
#  - a virtual environment in .venv with micronets installed editable, with test, bench and search extras.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="g++ gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm gcc-xtensa-lx106 dataset-fashion-mnist postgresql"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing Debian packages:$missing"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,bench,search]"
echo "setup: ready ($(.venv/bin/python --version), micronets $(.venv/bin/python -c 'import micronets; print(micronets.__version__)'))"
