#!/usr/bin/env bash
# Exits 0 when Calibre-Web serves its login page (HTTP 200).
set -euo pipefail

port=${CW_PORT:-8083}
port=${port%.0}
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/login") || true
if [[ $code != 200 ]]; then
    echo "Calibre-Web is not serving its login page on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
