#!/usr/bin/env bash
# Upgrades Syncthing from the Debian archive and re-applies the service settings. Keys, folders
# and the GUI login are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env SYNCTHING_GUI_PORT SYNCTHING_PUBLIC

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' syncthing 2>/dev/null || echo none)
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' syncthing)
if [[ $before == "$after" ]]; then
    log "syncthing is already the newest version (${after})"
else
    log "syncthing upgraded from ${before} to ${after}"
fi

ensure_user
prepare_storage
write_unit_override
stop_syncthing
[[ -f $ST_CONFIG ]] || die "$ST_CONFIG is missing; reinstall the app (keeping its volume)"
apply_settings
start_syncthing
wait_for_syncthing
log "Upgrade finished"
