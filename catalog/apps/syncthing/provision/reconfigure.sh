#!/usr/bin/env bash
# Applies changed GUI credentials, GUI port and the public-servers switch, then checks the login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env SYNCTHING_GUI_USER SYNCTHING_GUI_PASSWORD SYNCTHING_GUI_PORT SYNCTHING_PUBLIC

prepare_storage
write_unit_override
stop_syncthing
set_credentials
apply_settings
start_syncthing
wait_for_syncthing
check_login
log "Reconfiguration finished"
