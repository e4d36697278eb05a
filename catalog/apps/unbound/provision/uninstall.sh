#!/usr/bin/env bash
# Runs before the container is destroyed: stops Unbound. Nothing is deleted here; your files in
# /etc/unbound/local.d stay on their volume.
set -euo pipefail

if systemctl is-active --quiet unbound; then
    echo "==> Stopping Unbound"
    systemctl stop unbound
else
    echo "==> Unbound is not running"
fi
echo "==> Your files in /etc/unbound/local.d were not touched"
