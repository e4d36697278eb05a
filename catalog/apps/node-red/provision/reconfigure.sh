#!/usr/bin/env bash
# Applies a new editor password or the anonymous read-only switch: rewrites settings.js, ends the
# open editor sessions, restarts Node-RED and checks the login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env NR_USER NR_PASSWORD NR_PORT

prepare_data
write_settings
rm -f "$DATA_DIR/.sessions.json"
systemctl restart "$SERVICE"
wait_for_node_red
check_login
log "Reconfiguration finished"
