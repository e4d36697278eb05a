#!/usr/bin/env bash
# Runs before the container is destroyed: stops Glances. It keeps no data, so nothing is deleted
# or saved here.
set -euo pipefail

if systemctl is-active --quiet glances; then
    echo "==> Stopping Glances"
    systemctl stop glances
else
    echo "==> Glances is not running"
fi
