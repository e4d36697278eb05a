#!/usr/bin/env bash
# One attempt: Syncthing's health endpoint says OK and the web GUI page answers 200.
set -euo pipefail

port=${SYNCTHING_GUI_PORT:-8384}
port=${port%.0}
body=$(curl -fsS --max-time 5 "http://127.0.0.1:${port}/rest/noauth/health" 2>/dev/null) || body=""
if [[ $body != *'"OK"'* ]]; then
    echo "Syncthing's health endpoint does not answer OK on port ${port}" >&2
    exit 1
fi
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/") || true
if [[ $code != 200 ]]; then
    echo "The Syncthing GUI does not answer on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
echo "Syncthing is healthy on port ${port}"
