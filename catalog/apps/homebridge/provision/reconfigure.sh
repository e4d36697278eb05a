#!/usr/bin/env bash
# Applies a new password for the UI administrator and checks that it logs in.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env HB_USER HB_PASSWORD HB_PORT

write_admin
# The UI reads auth.json at every login; the restart also ends the sessions of the old password.
systemctl restart "$SERVICE"
wait_for_ui
check_login
log "Reconfiguration finished"
