#!/usr/bin/env bash
# Upgrades Radicale and its helpers from the Debian archive and re-applies the configuration.
# The password file and the calendars are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env RADICALE_PORT

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' radicale 2>/dev/null || echo none)
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}" python3-radicale
after=$(dpkg-query -W -f='${Version}' radicale)
if [[ $before == "$after" ]]; then
    log "radicale is already the newest version (${after})"
else
    log "radicale upgraded from ${before} to ${after}"
fi

prepare_storage
write_config
systemctl daemon-reload
systemctl restart radicale
wait_for_radicale
log "Upgrade finished"
