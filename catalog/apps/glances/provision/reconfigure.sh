#!/usr/bin/env bash
# Applies changed settings: username, password, refresh interval, port. Rewrites the password
# file and the service, restarts Glances and checks the new login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env GL_USER GL_PASSWORD GL_PORT GL_REFRESH

write_config
write_password
write_unit
start_service
check_login
log "Reconfiguration finished"
