#!/usr/bin/env bash
# Applies changed login, ports and encryption mode, then checks the login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env TR_USER TR_PASSWORD TR_PORT TR_PEER_PORT TR_ENCRYPTION

stop_daemon
prepare_downloads
write_settings
start_daemon
wait_for_daemon
check_login
log "Reconfiguration finished"
