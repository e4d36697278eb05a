#!/usr/bin/env bash
# Runs before the container is destroyed: stops the app so its data volume is left consistent.
# Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet nginx; then
    echo "==> Stopping nginx"
    systemctl stop nginx
fi
echo "==> The data in /var/lib/@ID@ was not touched"
