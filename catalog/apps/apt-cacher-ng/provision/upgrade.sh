#!/usr/bin/env bash
# Upgrades apt-cacher-ng from the Debian archive and re-applies the configuration. The cache and
# the maintenance password are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env ACNG_PORT

ensure_user
prepare_cache
log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' apt-cacher-ng 2>/dev/null || echo none)
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' apt-cacher-ng)
if [[ $before == "$after" ]]; then
    log "apt-cacher-ng is already the newest version (${after})"
else
    log "apt-cacher-ng upgraded from ${before} to ${after}"
fi

write_config
systemctl restart apt-cacher-ng
wait_for_acng
log "Upgrade finished"
