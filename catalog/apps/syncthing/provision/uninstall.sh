#!/usr/bin/env bash
# Runs before the container is destroyed: stops Syncthing so its index and the synced folders on
# the data volume are left consistent. Nothing is deleted here.
set -euo pipefail

unit=syncthing@syncthing.service
if systemctl is-active --quiet "$unit"; then
    echo "==> Stopping Syncthing"
    systemctl stop "$unit"
else
    echo "==> Syncthing is not running"
fi
echo "==> Configuration, keys and folders in /var/lib/syncthing were not touched"
