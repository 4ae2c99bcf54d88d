#!/usr/bin/env bash
# Prepares this machine for the realm lane (tests/realm, docs/testing.md "The realm lane"): Debian's
# arm64 cross compiler, the Realm launcher and payload built from tests/realm into a cache folder,
# and the emulated CCA host of ../shared/cca-emu made ready (its firmware unpacked and Debian's
# QEMU 10.0.2 fetched by its run-host.sh, then one self-test boot of about a second). Nothing
# slow runs here; the tests boot the host themselves.
#
# Usage: scripts/realm-lane-setup.sh [CACHE_DIR]   (default /var/cache/kubevirt-cca-realm)
# Needs root, apt-get (Debian 12) and ../shared/cca-emu. Elsewhere it says why and exits 0: the
# lane then skips itself with a reason.
set -euo pipefail

CACHE="${1:-${KUBEVIRT_CCA_REALM_CACHE:-/var/cache/kubevirt-cca-realm}}"
HOST_PACKAGES=(gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross make xz-utils)

log() { printf 'realm-lane-setup: %s\n' "$*" >&2; }
# shellcheck source=scripts/lane-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lane-lib.sh"

cd "$(dirname "$0")/.."
EMU="$(cd .. && pwd)/shared/cca-emu"
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  log "needs root and apt-get; skipping (the realm lane will skip itself)"
  exit 0
fi
if [ ! -x "$EMU/scripts/run-host.sh" ]; then
  log "no emulated CCA host at $EMU; skipping (the realm lane will skip itself)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive

# 1. The cross compiler (static glibc for the launcher, binutils for the payload).
install_missing "${HOST_PACKAGES[@]}"

# 2. The launcher and the payload (make rebuilds only what changed; about a second).
install -d -m 0755 "$CACHE"
make -s -C tests/realm OUT="$CACHE/build"

# 3. The emulated host: firmware unpacked and QEMU 10.0.2 fetched into $CACHE/emu once, proven
#    by the host's own self-test initramfs.
export CCA_EMU_CACHE="$CACHE/emu"
if [ ! -x "$CCA_EMU_CACHE/qemu/usr/bin/qemu-system-aarch64" ] || [ ! -f "$CACHE/READY" ]; then
  log "preparing the emulated CCA host in $CCA_EMU_CACHE"
  if ! CCA_EMU_LOG="$CACHE/self-test.log" "$EMU/scripts/run-host.sh" -t 300 \
    "$EMU/bin/host-test-initrd.cpio.gz" >/dev/null; then
    log "the emulated host's self-test failed; its console ends:"
    tail -n 30 "$CACHE/self-test.log" >&2 || true
    exit 1
  fi
fi
"$CCA_EMU_CACHE/qemu/usr/bin/qemu-system-aarch64" --version | head -n 1 >"$CACHE/READY"
log "realm lane ready in $CACHE ($(cat "$CACHE/READY"))"
