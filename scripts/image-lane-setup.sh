#!/usr/bin/env bash
# Prepares this machine for the image lane (tests/image): podman, a Debian base image made from
# Debian's own packages (no container registry needed), and the kubevirt-cca image built from the
# Containerfile through its PYTHON_IMAGE build argument.
#
# Usage: scripts/image-lane-setup.sh [CACHE_DIR]   (default /var/cache/kubevirt-cca-image)
# Env:   KUBEVIRT_CCA_IMAGE       the tag to build (default localhost/kubevirt-cca:ci)
#        KUBEVIRT_CCA_BASE_IMAGE  the base's tag (default localhost/kubevirt-cca-base:bookworm)
#        KUBEVIRT_CCA_IMAGE_ARM64 1: also build IMAGE-arm64 under qemu-user and check it (not CI)
# Needs root and apt-get (Debian 12). Elsewhere it says why and exits 0: the lane then skips
# itself with a reason. docs/development.md, "The image lane".
set -euo pipefail

CACHE="${1:-${KUBEVIRT_CCA_IMAGE_CACHE:-/var/cache/kubevirt-cca-image}}"
IMAGE="${KUBEVIRT_CCA_IMAGE:-localhost/kubevirt-cca:ci}"
BASE="${KUBEVIRT_CCA_BASE_IMAGE:-localhost/kubevirt-cca-base:bookworm}"
HOST_PACKAGES=(podman runc mmdebstrap uidmap containernetworking-plugins iptables)
# The base: what the Containerfile's build and run stages expect of PYTHON_IMAGE (a python3.11
# with venv; 'python' on PATH; a CA bundle; apt sources for libvirt-clients).
BASE_PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
HOST_SOURCES=/etc/apt/sources.list.d/debian.sources
HOST_CA=/etc/ssl/certs/ca-certificates.crt

log() { printf 'image-lane-setup: %s\n' "$*" >&2; }
# shellcheck source=scripts/lane-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lane-lib.sh"

if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  log "needs root and apt-get; skipping (the image lane will skip itself)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "$0")/.."

# 1. Host packages: podman from Debian (4.3), runc (crun fails on cgroup v1 machines like CI's).
install_missing "${HOST_PACKAGES[@]}"

# 2. containers.conf: runc, cgroupfs, and ulimits no higher than this machine's hard limits
#    (podman's default nofile exceeds what the CI machine grants, and runc then refuses to start
#    any container). Written when there is none, or rewritten when it is ours.
conf=/etc/containers/containers.conf
marker='# written by kubevirt-cca scripts/image-lane-setup.sh'
if [ ! -e "$conf" ] || head -n 1 "$conf" | grep -qxF "$marker"; then
  nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
  [ "$nofile" = unlimited ] || [ "$nofile" -gt 65536 ] && nofile=65536
  [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ] && nproc=4096
  install -d -m 0755 /etc/containers
  cat >"$conf.new" <<CONF
$marker
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  if ! cmp -s "$conf.new" "$conf"; then
    log "writing $conf (runc, cgroupfs, nofile=$nofile, nproc=$nproc)"
    mv "$conf.new" "$conf"
  else
    rm -f "$conf.new"
  fi
fi

# 3. The base image, made from Debian's packages with this machine's own apt sources, cached as
#    a tar; re-made only when the package list changes.
install -d -m 0755 "$CACHE"
# One set-up at a time on this machine (the base tar and the image tag are shared).
exec 9>"$CACHE/.lock"
flock 9
# make_base ARCH TAG: the base for ARCH (a Debian architecture), cached as a tar in CACHE and
# imported as TAG. A foreign ARCH runs its maintainer scripts under qemu-user (binfmt).
make_base() {
  local arch="$1" tag="$2" tar="$CACHE/base-bookworm-$1.tar" stamp="$BASE_PACKAGES" sources
  if [ ! -s "$tar" ] || [ "$(cat "$tar.packages" 2>/dev/null)" != "$stamp" ]; then
    sources="$HOST_SOURCES"
    if [ ! -s "$sources" ]; then
      sources=/etc/apt/sources.list
    fi
    log "making the $arch base with mmdebstrap into $tar (from $sources)"
    rm -f "$tar" "$tar.packages"
    # merged-usr hook: /usr merged without the usrmerge package, which would pull in 47 MB of perl.
    mmdebstrap --quiet --architectures="$arch" --variant=minbase --include="$BASE_PACKAGES" \
      --format=tar --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
      --aptopt='APT::Install-Recommends "false"' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
      --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      bookworm "$tar.part" "$sources"
    mv "$tar.part" "$tar"
    echo "$stamp" >"$tar.packages"
    podman rmi --force "$tag" >/dev/null 2>&1 || true
  fi
  if ! podman image exists "$tag"; then
    log "importing $tar as $tag"
    podman import --quiet --arch "$arch" --change 'CMD ["/bin/bash"]' "$tar" "$tag" >/dev/null
  fi
}
make_base "$(dpkg --print-architecture)" "$BASE"

# 4. The image, built from the Containerfile as it is committed. Only the build's network and
#    this machine's pip configuration and CA bundle (pip inside the build must trust what the
#    host trusts) come from here, as read-only mounts that do not end up in the image.
mounts=()
if [ -s "$HOST_CA" ]; then
  mounts+=(--volume "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro")
fi
if [ -s /etc/pip.conf ]; then
  mounts+=(--volume "/etc/pip.conf:/etc/pip.conf:ro")
fi
build_args=(--network host --build-arg "PYTHON_IMAGE=$BASE" --tag "$IMAGE" -f Containerfile "${mounts[@]}")
log "building $IMAGE"
start=$(date +%s)
podman build --quiet "${build_args[@]}" . >/dev/null
log "built $IMAGE in $(($(date +%s) - start)) s ($(podman image inspect --format '{{.Size}}' "$IMAGE") bytes)"
# 5. On request (KUBEVIRT_CCA_IMAGE_ARM64=1), the arm64 image too, from the same Containerfile
#    under qemu-user (binfmt), checked by running it: it must print what the native image
#    prints. Not in CI: on a fresh 2-core machine the arm64 base takes about 9 minutes and the
#    build about 6 (a source change: about 3); docs/development.md, "arm64".
if [ "${KUBEVIRT_CCA_IMAGE_ARM64:-0}" = 1 ] && [ "$(dpkg --print-architecture)" != arm64 ]; then
  install_missing qemu-user-static binfmt-support arch-test
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    log "qemu-user's aarch64 binfmt handler is not registered; cannot build for arm64"
    exit 1
  fi
  make_base arm64 "$BASE-arm64"
  arm_args=(--network host --build-arg "PYTHON_IMAGE=$BASE-arm64" --tag "$IMAGE-arm64"
            -f Containerfile "${mounts[@]}")
  log "building $IMAGE-arm64 (linux/arm64, under qemu-user)"
  start=$(date +%s)
  podman build --quiet --platform linux/arm64 "${arm_args[@]}" . >/dev/null
  log "built $IMAGE-arm64 in $(($(date +%s) - start)) s"
  check=(manifests --image registry.example/kubevirt-cca:1 --virt-launcher-image registry.example/l:1)
  if [ "$(podman run --rm --platform linux/arm64 "$IMAGE-arm64" "${check[@]}" | sha256sum)" != \
       "$(podman run --rm "$IMAGE" "${check[@]}" | sha256sum)" ]; then
    log "$IMAGE-arm64 prints other manifests than $IMAGE"
    exit 1
  fi
  log "$IMAGE-arm64 ($(podman image inspect --format '{{.Architecture}}' "$IMAGE-arm64")) prints what $IMAGE prints"
fi
# Layers of earlier builds would fill the disk run after run; the recent ones are the build
# cache that makes the next build take seconds, so only week-old ones go.
podman image prune --force --filter until=168h >/dev/null 2>&1 || true
