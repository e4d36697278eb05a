#!/usr/bin/env bash
# Runs before the container is destroyed: stops AdGuard Home so its statistics and query log are
# flushed to the volume. Nothing is deleted.
set -euo pipefail

if systemctl is-active --quiet adguardhome; then
    echo "==> Stopping AdGuard Home"
    systemctl stop adguardhome
else
    echo "==> AdGuard Home is not running"
fi
echo "==> The configuration and data in /var/lib/adguardhome were not touched"
