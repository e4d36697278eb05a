#!/usr/bin/env bash
# Exits 0 when Prometheus is ready and its API answers 200 with the configured login.
set -euo pipefail

port=${PROM_PORT:-9090}
port=${port%.0}
[[ -n ${PROM_USER:-} && -n ${PROM_PASSWORD:-} ]] || {
    echo "PROM_USER and PROM_PASSWORD are not set" >&2
    exit 1
}
auth=$(mktemp)
trap 'rm -f "$auth"' EXIT
chmod 0600 "$auth"
printf 'header = "Authorization: Basic %s"\n' \
    "$(printf '%s:%s' "$PROM_USER" "$PROM_PASSWORD" | base64 -w0)" >"$auth"
code=$(curl -sS --max-time 5 -K "$auth" -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:${port}/api/v1/query?query=up") || true
if [[ $code != 200 ]]; then
    echo "Prometheus is not answering with the login on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
