#!/usr/bin/env bash
# Exits 0 when the sync server reports itself up on its own health endpoint (over HTTPS when that is
# on; the certificate is self-signed) and serves the web app. One attempt; the store retries.
set -euo pipefail

port=${AB_PORT:-5006}
port=${port%.0}
[[ $port =~ ^[0-9]{1,5}$ ]] || {
    echo "invalid port '${port}'" >&2
    exit 1
}
scheme=http
[[ ${AB_HTTPS:-true} == true ]] && scheme=https
base="${scheme}://127.0.0.1:${port}"
body=$(curl -sS --insecure --max-time 5 "${base}/health") || true
if [[ $body != *'"UP"'* ]]; then
    echo "the sync server is not up on ${base} (health: ${body:-no answer})" >&2
    exit 1
fi
code=$(curl -sS --insecure --max-time 5 -o /dev/null -w '%{http_code}' "${base}/") || true
if [[ $code != 200 ]]; then
    echo "the sync server does not serve the web app on ${base}/ (HTTP ${code:-none})" >&2
    exit 1
fi
