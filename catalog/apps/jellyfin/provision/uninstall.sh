#!/usr/bin/env bash
# Runs before the container is destroyed: stops Jellyfin so its database on the data volume is
# closed cleanly. Nothing is deleted; the media library is a host directory and is never touched.
set -euo pipefail

if systemctl is-active --quiet jellyfin; then
    echo "==> Stopping Jellyfin"
    systemctl stop jellyfin
else
    echo "==> Jellyfin is not running"
fi
echo "==> /var/lib/jellyfin and /media were not touched"
