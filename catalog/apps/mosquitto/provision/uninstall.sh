#!/usr/bin/env bash
# Runs before the container is destroyed: stops Mosquitto, which writes its persistence file on
# the way out, so the data volume is left consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet mosquitto; then
    echo "==> Stopping Mosquitto (it saves retained messages and sessions to /var/lib/mosquitto)"
    systemctl stop mosquitto
else
    echo "==> Mosquitto is not running"
fi
echo "==> The data in /var/lib/mosquitto was not touched"
