#!/usr/bin/env bash
# Installs the Mosquitto MQTT broker from Debian 13's archive (no other repository) with password
# login. Safe to run again: every step overwrites its own result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env MQTT_USER MQTT_PASSWORD MQTT_PORT MQTT_WEBSOCKETS

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='mosquitto ${Version}' mosquitto)"

prepare_data
write_config
write_passwd

log "Enabling and starting mosquitto.service"
systemctl enable --quiet mosquitto
systemctl restart mosquitto
wait_for_mosquitto
mqtt_roundtrip || die "the MQTT round trip as '${MQTT_USER}' failed"
log "Publish/subscribe as '${MQTT_USER}' works"
log "Done. Connect your clients to mqtt://<container-ip>:${MQTT_PORT} as '${MQTT_USER}'."
