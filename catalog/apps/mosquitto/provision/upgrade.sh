#!/usr/bin/env bash
# Upgrades Mosquitto from the Debian archive and re-applies the configuration. The password file
# and the persistence data are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env MQTT_PORT MQTT_WEBSOCKETS

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || echo none)
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}" libmosquitto1
after=$(dpkg-query -W -f='${Version}' mosquitto)
if [[ $before == "$after" ]]; then
    log "mosquitto is already the newest version (${after})"
else
    log "mosquitto upgraded from ${before} to ${after}"
fi

prepare_data
write_config
systemctl restart mosquitto
wait_for_mosquitto
log "Upgrade finished"
