#!/usr/bin/env bash
# Runs before the container is destroyed: stops the sync server so its databases on the data volume
# are left consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet actual-budget; then
    echo "==> Stopping the Actual sync server"
    systemctl stop actual-budget
else
    echo "==> The Actual sync server is not running"
fi
echo "==> Budgets and the account database in /var/lib/actual-budget were not touched"
