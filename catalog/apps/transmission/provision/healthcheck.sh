#!/usr/bin/env bash
# One attempt: the web interface answers 200 to an authenticated request.
set -euo pipefail

port=${TR_PORT:-9091}
port=${port%.0}
: "${TR_USER:?TR_USER is not set}" "${TR_PASSWORD:?TR_PASSWORD is not set}"
# The credentials reach curl on stdin, never on its command line.
code=$(printf 'header = "Authorization: Basic %s"\n' "$(printf '%s:%s' "$TR_USER" "$TR_PASSWORD" | base64 -w0)" |
    curl -sS --max-time 5 -K - -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/transmission/web/") || true
if [[ $code != 200 ]]; then
    echo "Transmission's web interface does not answer on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
echo "Transmission's web interface answers on port ${port}"
