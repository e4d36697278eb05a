#!/usr/bin/env bash
# Installs qbittorrent-nox from Debian's archive as a system service with its web UI behind a
# login. Safe to run again: the configuration is updated in place, downloads are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env QBT_USER QBT_PASSWORD QBT_PORT QBT_PEER_PORT

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='qbittorrent-nox ${Version}' qbittorrent-nox)"

ensure_user
prepare_storage
write_unit_override
stop_qbittorrent
write_config yes
start_qbittorrent
wait_for_qbittorrent
check_login
log "Done. Open http://<container-ip>:${QBT_PORT}/ and log in as '${QBT_USER}'."
