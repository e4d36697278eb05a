#!/usr/bin/env bash
# Runs before the container is destroyed: stops qBittorrent so it saves its state and closes the
# files on the downloads volume. Nothing is deleted here.
set -euo pipefail

unit=qbittorrent-nox@qbittorrent.service
if systemctl is-active --quiet "$unit"; then
    echo "==> Stopping qBittorrent"
    systemctl stop "$unit"
else
    echo "==> qBittorrent is not running"
fi
echo "==> The downloads in /var/lib/qbittorrent/downloads were not touched"
