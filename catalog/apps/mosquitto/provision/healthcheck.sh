#!/usr/bin/env bash
# One attempt: subscribes to a fresh topic, publishes a token and expects to receive it, logged
# in with the store's account. Proves the broker accepts the login and routes messages.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env MQTT_USER MQTT_PASSWORD MQTT_PORT

if ! mqtt_roundtrip; then
    echo "Mosquitto on port ${MQTT_PORT}: no publish/subscribe round trip as '${MQTT_USER}'" >&2
    exit 1
fi
echo "MQTT round trip on port ${MQTT_PORT} as '${MQTT_USER}' OK"
