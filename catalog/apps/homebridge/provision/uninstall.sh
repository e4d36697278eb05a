#!/usr/bin/env bash
# Runs before the container is destroyed: stops Homebridge and its UI so the storage volume is left
# consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet homebridge; then
    echo "==> Stopping Homebridge"
    systemctl stop homebridge
else
    echo "==> Homebridge is not running"
fi
echo "==> config.json, pairings, accessories and plugins in /var/lib/homebridge were not touched"
