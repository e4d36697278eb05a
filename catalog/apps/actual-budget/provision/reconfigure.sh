#!/usr/bin/env bash
# Applies a new server password and the HTTPS switch: rewrites the configuration, restarts the
# server, sets the password (ending the sessions of the old one) and checks the login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env AB_PASSWORD AB_HTTPS AB_PORT

prepare_data
write_config
install -m 0644 "$ASSETS/set-password.mjs" "$APP_DIR/set-password.mjs"
systemctl restart "$SERVICE"
wait_for_server
apply_password
check_login
log "Reconfiguration finished"
