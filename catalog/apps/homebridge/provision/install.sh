#!/usr/bin/env bash
# Installs Homebridge and the Homebridge UI (pinned, from npm) on Debian's Node.js, sets the UI's
# administrator, and runs both as the system user homebridge. Safe to run again: every step
# overwrites its own result. Storage from an earlier install keeps its pairings, accessories and
# plugins; only the UI port and the administrator's password are set again.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env HB_USER HB_PASSWORD HB_PORT

install_packages
install_homebridge
ensure_user
if [[ -e $DATA_DIR/config.json ]]; then
    log "Found config.json from an earlier install in $DATA_DIR; keeping the bridge and its pairings"
fi
prepare_storage
write_config
write_admin
write_unit

log "Enabling and starting $SERVICE.service"
systemctl enable --quiet "$SERVICE"
systemctl restart "$SERVICE"
wait_for_ui
check_login
log "Done. Open http://<container-ip>:${HB_PORT}/ and log in as '${HB_USER}'; the HomeKit PIN is on the UI's status page."
