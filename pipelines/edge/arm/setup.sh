#!/usr/bin/env bash
# Builds the emulated-ARM harness of `edgesmith bench --emulate` and the arm_cost stage, from the
# package registries only, into ARM_HOME (default .arm/ in the repository, ignored by git):
#   qemu-aarch64 (Debian's qemu-user: dynamically linked, it loads TCG plugins),
#   libicount.so (pipelines/edge/arm/icount.c against the plugin header of the same QEMU version),
#   rootfs/      an arm64 Debian root with Python 3.11 (debootstrap, first stage, unpacked),
#   site/        the aarch64 wheels of the pinned TFLite runtime and NumPy, unpacked.
# Idempotent: a finished part is not built again. Exit 0: built; 1: cannot be built here (one line why).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
ARM_HOME=${ARM_HOME:-$ROOT/.arm}
PY=${PYTHON:-$ROOT/.venv/bin/python}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
# The aarch64 wheels: the same versions as requirements.txt's runtime and NumPy.
WHEELS=$(grep -E '^(ai-edge-litert|numpy)==' "$ROOT/requirements.txt" | awk '{print $1}' | tr '\n' ' ')

fail() { echo "arm-setup: $*" >&2; exit 1; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo

need_apt=""
command -v qemu-aarch64 >/dev/null || need_apt="$need_apt qemu-user"
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need_apt="$need_apt debootstrap"
command -v gcc >/dev/null || need_apt="$need_apt gcc"
if [ -n "$need_apt" ]; then
  command -v apt-get >/dev/null || fail "needs$need_apt and there is no apt-get: install them, then run make arm-setup again"
  if [ -n "$SUDO" ] && ! sudo -n true 2>/dev/null; then fail "needs$need_apt: not root and no sudo"; fi
  echo "arm-setup: installing$need_apt"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq && $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $need_apt >/dev/null || fail "apt-get install$need_apt failed"
fi
PATH=$PATH:/usr/sbin
mkdir -p "$ARM_HOME"
cd "$ARM_HOME"

# 1. The plugin, against the header of the installed QEMU's own source package.
QEMU_VERSION=$(dpkg-query -W -f='${source:Version}' qemu-user)
if [ ! -f libicount.so ] || [ "$(cat libicount.version 2>/dev/null)" != "$QEMU_VERSION" ] || [ "$HERE/icount.c" -nt libicount.so ]; then
  if [ ! -f "include-$QEMU_VERSION/qemu-plugin.h" ]; then
    echo "arm-setup: fetching the plugin header of QEMU $QEMU_VERSION (Debian source package)"
    rm -rf apt src && mkdir -p apt/sources apt/lists/partial src
    printf 'Types: deb-src\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$MIRROR" "$SUITE" "$SUITE" > apt/sources/src.sources
    APT=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$ARM_HOME/apt/sources" -o "Dir::State::Lists=$ARM_HOME/apt/lists")
    apt-get "${APT[@]}" update -qq >/dev/null 2>&1 || fail "cannot read the Debian source index at $MIRROR"
    (cd src && apt-get "${APT[@]}" source --download-only -qq "qemu=$QEMU_VERSION" >/dev/null 2>&1) \
      || fail "cannot download the qemu $QEMU_VERSION source package"
    mkdir -p "include-$QEMU_VERSION"
    tar -xJf src/qemu_*.orig.tar.xz --wildcards --strip-components=3 -C "include-$QEMU_VERSION" '*/include/qemu/qemu-plugin.h'
    rm -rf apt src
  fi
  gcc -O2 -shared -fPIC -I "include-$QEMU_VERSION" -o libicount.so "$HERE/icount.c"
  echo "$QEMU_VERSION" > libicount.version
fi

# 2. An arm64 Python: debootstrap's first stage downloads and unpacks; every .deb is then unpacked.
if [ ! -x rootfs/usr/bin/python3.11 ] || [ ! -f rootfs/.complete ]; then
  echo "arm-setup: building an arm64 Debian $SUITE root with Python 3.11 (debootstrap)"
  rm -rf rootfs
  debootstrap --arch=arm64 --foreign --variant=minbase --include=python3-minimal,libpython3.11-stdlib \
    "$SUITE" rootfs "$MIRROR" >debootstrap.log 2>&1 || fail "debootstrap failed (see $ARM_HOME/debootstrap.log)"
  for deb in rootfs/var/cache/apt/archives/*.deb; do dpkg -x "$deb" rootfs; done
  rm -rf rootfs/var/cache/apt/archives/*.deb rootfs/proc/* rootfs/dev/* 2>/dev/null || true
  touch rootfs/.complete
fi

# 3. The aarch64 wheels (the 2.x runtime is only found with the manylinux_2_27 tag).
if [ ! -f site/.complete ] || [ "$(cat site/.complete)" != "$WHEELS" ]; then
  echo "arm-setup: downloading the aarch64 wheels of $WHEELS"
  rm -rf site wheels && mkdir -p site wheels
  "$PY" -m pip download -q --only-binary=:all: --python-version 3.11 --platform manylinux_2_27_aarch64 \
    --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 \
    -d wheels $WHEELS 2>/dev/null || fail "pip download of the aarch64 wheels ($WHEELS) failed"
  for w in wheels/*.whl; do "$PY" -m zipfile -e "$w" site; done
  rm -rf wheels
  echo "$WHEELS" > site/.complete
fi

echo "arm-setup: ready in $ARM_HOME ($(qemu-aarch64 --version | head -1))"
