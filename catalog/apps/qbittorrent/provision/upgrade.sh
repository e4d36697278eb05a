#!/usr/bin/env bash
# Upgrades qbittorrent-nox from the Debian archive and re-applies ports and paths. The login
# (which may have been changed in the web UI), torrents and downloads are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env QBT_PORT QBT_PEER_PORT

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' qbittorrent-nox 2>/dev/null || echo none)
stop_qbittorrent
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' qbittorrent-nox)
if [[ $before == "$after" ]]; then
    log "qbittorrent-nox is already the newest version (${after})"
else
    log "qbittorrent-nox upgraded from ${before} to ${after}"
fi

ensure_user
prepare_storage
write_unit_override
stop_qbittorrent
write_config no
start_qbittorrent
wait_for_qbittorrent
log "Upgrade finished"
