#!/usr/bin/env bash
# Applies a changed login and ports, then checks the login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env QBT_USER QBT_PASSWORD QBT_PORT QBT_PEER_PORT

ensure_user
prepare_storage
write_unit_override
stop_qbittorrent
write_config yes
start_qbittorrent
wait_for_qbittorrent
check_login
log "Reconfiguration finished"
