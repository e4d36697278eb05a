#!/usr/bin/env bash
# Runs before the container is destroyed: stops Plex so its databases on the config volume are
# closed cleanly. Nothing is deleted; the media library is a host directory and is never touched.
set -euo pipefail

if systemctl is-active --quiet plexmediaserver; then
    echo "==> Stopping Plex Media Server"
    systemctl stop plexmediaserver
else
    echo "==> Plex Media Server is not running"
fi
echo "==> /var/lib/plexmediaserver and /media were not touched"
