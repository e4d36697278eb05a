#!/usr/bin/env bash
# Applies changed settings: password, terminals, port. Rewrites the Jupyter Server configuration,
# restarts the server (running kernels stop) and checks the new login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env JL_PASSWORD JL_PORT JL_TERMINALS

write_config
start_service
check_login
log "Reconfiguration finished"
