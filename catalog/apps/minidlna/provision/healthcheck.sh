#!/usr/bin/env bash
# One attempt: MiniDLNA's status page on its HTTP port answers 200 with its media counts.
set -euo pipefail

port=${DLNA_PORT:-8200}
port=${port%.0}
page=$(curl -fsS --max-time 5 "http://127.0.0.1:${port}/" 2>/dev/null) || page=""
if [[ $page != *MiniDLNA* ]]; then
    echo "MiniDLNA's status page does not answer on port ${port}" >&2
    exit 1
fi
echo "MiniDLNA's status page answers on port ${port}"
