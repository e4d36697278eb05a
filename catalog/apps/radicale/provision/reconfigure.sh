#!/usr/bin/env bash
# Applies a changed password: rewrites the htpasswd file and checks the new login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env RADICALE_USER RADICALE_PASSWORD RADICALE_PORT

prepare_storage
write_users
# Radicale reads the password file at every login; the restart only starts from a clean state.
systemctl restart radicale
wait_for_radicale
check_login
log "Reconfiguration finished"
