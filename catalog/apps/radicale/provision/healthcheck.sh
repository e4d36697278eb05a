#!/usr/bin/env bash
# Exits 0 when Radicale answers HTTP on its port: 200, a redirect to the web UI, or 401 all count.
set -euo pipefail

port=${RADICALE_PORT:-5232}
port=${port%.0}
code=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port}/") || true
case $code in
    200 | 302 | 401) exit 0 ;;
    *)
        echo "Radicale is not answering on port ${port} (HTTP ${code:-none})" >&2
        exit 1
        ;;
esac
