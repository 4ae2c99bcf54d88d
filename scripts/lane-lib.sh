# Shared by the lanes' machine set-up scripts (sourced, not run): installs the Debian packages
# a lane needs that are not installed yet. The caller defines log().

# install_missing PACKAGE...: apt-get install only those not installed (nothing to do: no apt).
install_missing() {
  local pkg missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}
