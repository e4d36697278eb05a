#!/usr/bin/env bash
# Upgrades transmission-daemon from the Debian archive and re-applies the settings. Torrents and
# downloads are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env TR_USER TR_PASSWORD TR_PORT TR_PEER_PORT TR_ENCRYPTION

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' transmission-daemon 2>/dev/null || echo none)
stop_daemon
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' transmission-daemon)
if [[ $before == "$after" ]]; then
    log "transmission-daemon is already the newest version (${after})"
else
    log "transmission-daemon upgraded from ${before} to ${after}"
fi

# The package may have started the daemon again.
stop_daemon
prepare_downloads
write_settings
start_daemon
wait_for_daemon
check_login
log "Upgrade finished"
