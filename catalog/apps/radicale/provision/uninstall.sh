#!/usr/bin/env bash
# Runs before the container is destroyed: stops Radicale so the collections volume is left
# consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet radicale; then
    echo "==> Stopping Radicale"
    systemctl stop radicale
else
    echo "==> Radicale is not running"
fi
echo "==> Calendars and address books in /var/lib/radicale/collections were not touched"
