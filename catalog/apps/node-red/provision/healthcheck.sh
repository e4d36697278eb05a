#!/usr/bin/env bash
# Exits 0 when Node-RED serves its flow editor (HTTP 200) on its port. One attempt; the store retries.
set -euo pipefail

port=${NR_PORT:-1880}
port=${port%.0}
[[ $port =~ ^[0-9]{1,5}$ ]] || {
    echo "invalid port '${port}'" >&2
    exit 1
}
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/") || true
if [[ $code != 200 ]]; then
    echo "Node-RED is not serving the editor on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
