#!/usr/bin/env bash
# Exits 0 when the Glances REST API answers 200 with the configured login (it reads /api/4/cpu).
set -euo pipefail

port=${GL_PORT:-61208}
port=${port%.0}
[[ -n ${GL_USER:-} && -n ${GL_PASSWORD:-} ]] || {
    echo "GL_USER and GL_PASSWORD are not set" >&2
    exit 1
}
auth=$(mktemp)
trap 'rm -f "$auth"' EXIT
chmod 0600 "$auth"
printf 'header = "Authorization: Basic %s"\n' \
    "$(printf '%s:%s' "$GL_USER" "$GL_PASSWORD" | base64 -w0)" >"$auth"
code=$(curl -sS --max-time 5 -K "$auth" -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:${port}/api/4/cpu") || true
if [[ $code != 200 ]]; then
    echo "The Glances REST API is not answering with the login on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
