#!/usr/bin/env bash
# Prepares this machine for the boot lane (tests/boot): libvirt's QEMU driver without systemd,
# QEMU for aarch64 (TCG), the AAVMF firmware, and an arm64 guest kernel plus busybox-static
# unpacked into a cache folder that later runs reuse.
#
# Usage: scripts/boot-lane-setup.sh [CACHE_DIR]   (default /var/cache/kubevirt-cca-boot)
# Needs root and apt-get (Debian 12). Elsewhere it says why and exits 0: the lane then skips
# itself with a reason.
set -euo pipefail

CACHE="${1:-${KUBEVIRT_CCA_BOOT_CACHE:-/var/cache/kubevirt-cca-boot}}"
HOST_PACKAGES=(qemu-system-arm qemu-efi-aarch64 libvirt-daemon libvirt-daemon-driver-qemu
  libvirt-clients ipxe-qemu)

log() { printf 'boot-lane-setup: %s\n' "$*" >&2; }
# shellcheck source=scripts/lane-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lane-lib.sh"

if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  log "needs root and apt-get; skipping (the boot lane will skip itself)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive

# 1. Host packages. Not libvirt-daemon-system: it pulls in systemd as init.
install_missing "${HOST_PACKAGES[@]}"

# 2. What libvirtd resolves before it reads qemu.conf: the libvirt-qemu user and group,
#    and its state folders (libvirt-daemon-system would create these).
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
getent group kvm >/dev/null || groupadd --system kvm
getent passwd libvirt-qemu >/dev/null ||
  useradd --system --gid libvirt-qemu --groups kvm --home-dir /var/lib/libvirt \
    --no-create-home --shell /usr/sbin/nologin libvirt-qemu
install -d -m 0755 /var/log/libvirt/qemu /var/lib/libvirt/qemu /var/cache/libvirt/qemu /run/libvirt

# libvirt gives each QEMU a private mount namespace; where this machine cannot create one
# (some containers), QEMU fails to start unless qemu.conf turns that off.
if ! unshare --mount true 2>/dev/null; then
  conf=/etc/libvirt/qemu.conf
  if ! grep -qs '^[[:space:]]*namespaces[[:space:]]*=' "$conf"; then
    log "no mount namespaces here: adding 'namespaces = [ ]' to $conf"
    printf '# added by kubevirt-cca scripts/boot-lane-setup.sh: no mount namespaces here\nnamespaces = [ ]\n' >>"$conf"
  fi
fi

# 3. Guest kernel and busybox for arm64, unpacked once into the cache folder.
install -d -m 0755 "$CACHE"
if [ -f "$CACHE/READY" ]; then
  log "guest files cached in $CACHE ($(cat "$CACHE/READY"))"
  exit 0
fi

added_arch=no
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  added_arch=yes
fi
cleanup() {
  if [ "$added_arch" = yes ]; then
    dpkg --remove-architecture arm64 || true
    # Drop the arm64 package lists so later apt runs do not fetch or carry them.
    apt-get update -qq || true
  fi
}
trap cleanup EXIT

apt-get update -qq
# The generic flavour: the cloud flavour has no PCI host driver for QEMU's virt machine.
kernel_pkg="$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-arm64-unsigned$' |
  awk '{print $1}' | sort -V | tail -n 1)"
if [ -z "$kernel_pkg" ]; then
  log "no linux-image-6.1.0-*-arm64-unsigned package found"
  exit 1
fi
log "fetching $kernel_pkg and busybox-static:arm64 into $CACHE"
work="$(mktemp -d)"
# apt downloads as its own _apt user: let it write there.
chown _apt "$work" 2>/dev/null || chmod 0777 "$work"
(cd "$work" && apt-get download -qq "${kernel_pkg}:arm64" busybox-static:arm64)
rm -rf "$CACHE/root"
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$CACHE/root"
done
rm -rf "$work"

vmlinuz="$(ls "$CACHE"/root/boot/vmlinuz-* | head -n 1)"
ln -sfn "${vmlinuz#"$CACHE"/}" "$CACHE/vmlinuz"
ln -sfn root/bin/busybox "$CACHE/busybox"
test -s "$CACHE/vmlinuz" && test -x "$CACHE/busybox"
echo "$kernel_pkg" >"$CACHE/READY"
log "guest files ready in $CACHE ($kernel_pkg)"
