#!/usr/bin/env bash
# Applies changed settings: account, listeners. Rewrites the password file and the listener
# configuration, restarts the broker and checks a publish/subscribe round trip with the new login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env MQTT_USER MQTT_PASSWORD MQTT_PORT MQTT_WEBSOCKETS

prepare_data
write_config
write_passwd
systemctl restart mosquitto
wait_for_mosquitto
mqtt_roundtrip || die "the MQTT round trip as '${MQTT_USER}' failed"
log "Publish/subscribe as '${MQTT_USER}' works"
log "Reconfiguration finished"
