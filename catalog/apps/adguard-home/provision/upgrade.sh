#!/usr/bin/env bash
# Moves AdGuard Home to the release this catalog entry pins (it migrates its own configuration on
# the first start) and rewrites the service unit. Settings, filters and statistics are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env AGH_WEB_PORT AGH_DNS_PORT

apt-get update -q
apt_install "${PACKAGES[@]}"
before=$(cat "$AGH_DIR/.appstore-version" 2>/dev/null || echo none)
ensure_user
install_adguardhome
if [[ $before == "$AGH_VERSION" ]]; then
    log "AdGuard Home is already at the pinned version ($AGH_VERSION)"
else
    log "AdGuard Home upgraded from $before to $AGH_VERSION"
fi
prepare_workdir
write_unit
systemctl daemon-reload
systemctl restart adguardhome
wait_for_adguardhome
log "Upgrade finished"
