#!/usr/bin/env bash
# Exits 0 when JupyterLab serves its login page (HTTP 200) and its API answers with its version.
set -euo pipefail

port=${JL_PORT:-8888}
port=${port%.0}
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/login") || true
if [[ $code != 200 ]]; then
    echo "JupyterLab is not serving its login page on port ${port} (HTTP ${code:-none})" >&2
    exit 1
fi
body=$(curl -sS --max-time 5 "http://127.0.0.1:${port}/api") || true
if [[ $body != *'"version"'* ]]; then
    echo "The Jupyter Server API on port ${port} did not answer with its version" >&2
    exit 1
fi
