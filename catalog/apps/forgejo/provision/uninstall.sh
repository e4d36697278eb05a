#!/usr/bin/env bash
# Runs before the container is destroyed: stops Forgejo so the SQLite database and the
# repositories on the data volume are left consistent. Nothing is deleted.
set -euo pipefail

if systemctl is-active --quiet forgejo; then
    echo "==> Stopping Forgejo"
    systemctl stop forgejo
else
    echo "==> Forgejo is not running"
fi
echo "==> Repositories, database and configuration in /var/lib/forgejo were not touched"
