#!/usr/bin/env bash
# Prepares this machine for the peers lane (tests/peers, docs/testing.md): the Debian packages
# the real peers need at run time, and the peers unpacked (checksums checked) into a cache
# folder that later runs reuse.
#
# Usage: scripts/peers-lane-setup.sh [CACHE_DIR]
#   CACHE_DIR  default $KUBEVIRT_CCA_PEERS_CACHE, else /var/cache/kubevirt-cca-peers
#              (export KUBEVIRT_CCA_PEERS_CACHE=CACHE_DIR for the tests to use it)
# Needs ../shared/peers beside the project. Without root or apt-get it installs nothing and
# says so (the lane then skips itself with a reason, or fails where it is required).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${1:-${KUBEVIRT_CCA_PEERS_CACHE:-/var/cache/kubevirt-cca-peers}}"
PEERS="../shared/peers"
# libvirt0: kubevirt-launcher-peer links libvirt; libvirt-clients: virsh (libvirt's own parser,
# test:///default) and libvirt's RNG schemas; libxml2-utils: xmllint; util-linux: unshare
# (the Plugins path runs in a private mount namespace).
PACKAGES=(libvirt0 libvirt-clients libxml2-utils util-linux)

log() { printf 'peers-lane-setup: %s\n' "$*" >&2; }

if [ ! -f "$PEERS/scripts/unpack.py" ]; then
  log "$PEERS is absent; nothing to set up (the lane skips itself)"
  exit 0
fi

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  missing=()
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  log "not root or no apt-get: packages not checked (${PACKAGES[*]})"
fi

# The KubeVirt peers only: the API server lane (tests/peers/apiserver) unpacks its own.
NAMES="kubevirt-api-peer-v1.9.0,kubevirt-api-peer-main,kubevirt-launcher-peer-v1.9.0,kubevirt-launcher-peer-main"
install -d -m 0755 "$CACHE"
python3 "$PEERS/scripts/unpack.py" "$CACHE" --only "$NAMES" --quiet >/dev/null
log "peers ready in $CACHE"
