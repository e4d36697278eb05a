#!/usr/bin/env bash
# Runs before the container is destroyed: stops MiniDLNA. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet minidlna; then
    echo "==> Stopping MiniDLNA"
    systemctl stop minidlna
else
    echo "==> MiniDLNA is not running"
fi
echo "==> The media in /var/lib/minidlna were not touched"
