#!/usr/bin/env bash
# Exits 0 when CouchDB answers /_up (the one endpoint open without credentials).
set -euo pipefail

port=${COUCHDB_PORT:-5984}
port=${port%.0}
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:${port}/_up"
