#!/usr/bin/env bash
# Installs Node-RED (pinned, from npm) on Debian's Node.js, with a login for the flow editor, and runs
# it as the system user nodered. Safe to run again: every step overwrites its own result. A data
# volume from an earlier install keeps its flows; only the login is set again.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env NR_USER NR_PASSWORD NR_PORT

install_packages
install_node_red
ensure_user
prepare_data
if [[ -e $DATA_DIR/flows.json ]]; then
    log "Found flows from an earlier install in $DATA_DIR; keeping them"
fi
write_settings
# Editor sessions of an earlier install must log in again with the new password.
rm -f "$DATA_DIR/.sessions.json"
write_unit

log "Enabling and starting $SERVICE.service"
systemctl enable --quiet "$SERVICE"
systemctl restart "$SERVICE"
wait_for_node_red
check_login
log "Done. Open http://<container-ip>:${NR_PORT}/ and log in as '${NR_USER}'."
