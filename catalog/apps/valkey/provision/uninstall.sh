#!/usr/bin/env bash
# Runs before the container is destroyed: stops Valkey, which writes a final snapshot on the way
# down, so the data volume is consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet valkey-server; then
    echo "==> Stopping Valkey (it saves its data to /var/lib/valkey)"
    systemctl stop valkey-server
else
    echo "==> Valkey is not running"
fi
echo "==> The data in /var/lib/valkey was not touched"
