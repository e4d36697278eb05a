#!/usr/bin/env bash
# Runs before the container is destroyed: stops Samba so no client writes to the share volume
# any more. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet smbd; then
    echo "==> Stopping smbd"
    systemctl stop smbd
else
    echo "==> smbd is not running"
fi
echo "==> The files in /srv/samba/share were not touched"
