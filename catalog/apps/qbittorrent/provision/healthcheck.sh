#!/usr/bin/env bash
# One attempt: the web UI answers 200 with qBittorrent's page. No login is tried here, so that a
# password changed in the web UI never locks the health check (or localhost) out.
set -euo pipefail

port=${QBT_PORT:-8080}
port=${port%.0}
page=$(curl -fsS --max-time 5 "http://127.0.0.1:${port}/" 2>/dev/null) || page=""
if [[ $page != *qBittorrent* ]]; then
    echo "qBittorrent's web UI does not answer on port ${port}" >&2
    exit 1
fi
echo "qBittorrent's web UI answers on port ${port}"
