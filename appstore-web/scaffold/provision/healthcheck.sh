#!/usr/bin/env bash
# Exits 0 when @NAME@ answers 200 on its port.
set -euo pipefail

port=${APP_PORT:-8080}
port=${port%.0}
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/") || true
if [[ $code != 200 ]]; then
    echo "@NAME@ is not answering on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
