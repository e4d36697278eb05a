#!/usr/bin/env bash
# Exits 0 when the Homebridge UI serves its page (HTTP 200) on its port. The UI, not the bridge, is
# what must answer: it restarts Homebridge itself and is where a failing plugin gets fixed. One
# attempt; the store retries.
set -euo pipefail

port=${HB_PORT:-8581}
port=${port%.0}
[[ $port =~ ^[0-9]{1,5}$ ]] || {
    echo "invalid port '${port}'" >&2
    exit 1
}
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/") || true
if [[ $code != 200 ]]; then
    echo "the Homebridge UI is not answering on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
