#!/usr/bin/env bash
# Runs before the container is destroyed: stops Node-RED so the flows on the data volume are left
# consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet node-red; then
    echo "==> Stopping Node-RED"
    systemctl stop node-red
else
    echo "==> Node-RED is not running"
fi
echo "==> Flows, credentials and nodes in /var/lib/node-red were not touched"
