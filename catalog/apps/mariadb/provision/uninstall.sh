#!/usr/bin/env bash
# Runs before the container is destroyed: shuts MariaDB down cleanly (InnoDB flushes its buffers,
# no crash recovery at the next start) so the data volume is consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet mariadb; then
    echo "==> Stopping MariaDB"
    systemctl stop mariadb
else
    echo "==> MariaDB is not running"
fi
echo "==> The databases in /var/lib/mysql were not touched"
