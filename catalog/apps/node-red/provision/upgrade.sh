#!/usr/bin/env bash
# Upgrades Node.js and npm from the Debian archive and Node-RED to the version this catalog entry
# pins, then writes settings.js and the unit again. Flows and installed nodes are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env NR_USER NR_PASSWORD NR_PORT

before=$(node -p 'require("/opt/node-red/node_modules/node-red/package.json").version' 2>/dev/null || echo none)
install_packages
install_node_red
if [[ $before == "$NODE_RED_VERSION" ]]; then
    log "Node-RED is already at ${NODE_RED_VERSION}"
else
    log "Node-RED moved from ${before} to ${NODE_RED_VERSION}"
fi
ensure_user
prepare_data
write_settings
write_unit
systemctl enable --quiet "$SERVICE"
systemctl restart "$SERVICE"
wait_for_node_red
log "Upgrade finished"
