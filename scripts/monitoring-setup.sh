#!/usr/bin/env bash
# Prepares this machine for the monitoring tests (tests/install/test_monitoring.py): Prometheus'
# own `promtool`, which checks the PrometheusRule's rules and runs their unit tests
# (docs/monitoring.md). Debian's package `prometheus` ships it.
#
# Usage: scripts/monitoring-setup.sh
# Needs root and apt-get (Debian 12). Elsewhere it says why and exits 0: the tests then skip
# themselves with a reason (and fail under KUBEVIRT_CCA_NO_SKIPS=1).
set -euo pipefail

log() { printf 'monitoring-setup: %s\n' "$*" >&2; }
# shellcheck source=scripts/lane-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lane-lib.sh"

if command -v promtool >/dev/null 2>&1; then
  log "promtool present: $(promtool --version 2>&1 | head -n 1)"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
  log "needs root and apt-get; skipping (the promtool tests will skip themselves)"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
install_missing prometheus
log "promtool ready: $(promtool --version 2>&1 | head -n 1)"
