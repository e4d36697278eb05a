#!/usr/bin/env bash
# Installs the Actual Budget sync server (pinned, from npm) on Debian's Node.js, serves it over HTTPS
# with a self-signed certificate (unless switched off), sets the server password and runs it as the
# system user actual. Safe to run again: every step overwrites its own result. Budgets from an
# earlier install stay; only the password is set again.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env AB_PASSWORD AB_HTTPS AB_PORT

install_packages
install_server
ensure_user
if [[ -e $DATA_DIR/server-files/account.sqlite ]]; then
    log "Found server data from an earlier install in $DATA_DIR; keeping it"
fi
prepare_data
write_config
write_unit

log "Enabling and starting $SERVICE.service"
systemctl enable --quiet "$SERVICE"
systemctl restart "$SERVICE"
wait_for_server
apply_password
check_login
log "Done. Open $(scheme)://<container-ip>:${AB_PORT}/ and enter the server password."
