#!/usr/bin/env bash
# Runs before the container is destroyed: stops CouchDB cleanly so that the data volume, if the
# store keeps it, is left consistent. Nothing is deleted here.
set -euo pipefail

if systemctl is-active --quiet couchdb; then
    echo "==> Stopping CouchDB"
    systemctl stop couchdb
else
    echo "==> CouchDB is not running"
fi
echo "==> Databases in /var/lib/couchdb were not touched"
