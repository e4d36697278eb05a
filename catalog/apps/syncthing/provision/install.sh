#!/usr/bin/env bash
# Installs Syncthing from Debian's archive as a system service with a password-protected web GUI.
# Safe to run again: existing keys, configuration and folders on the volume are kept; the GUI
# login is set to the given credentials.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env SYNCTHING_GUI_USER SYNCTHING_GUI_PASSWORD SYNCTHING_GUI_PORT SYNCTHING_PUBLIC

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='syncthing ${Version}' syncthing)"

ensure_user
prepare_storage
write_unit_override
stop_syncthing
set_credentials
apply_settings
start_syncthing
wait_for_syncthing
check_login
show_device_id
log "Done. Open http://<container-ip>:${SYNCTHING_GUI_PORT}/ and log in as '${SYNCTHING_GUI_USER}'."
