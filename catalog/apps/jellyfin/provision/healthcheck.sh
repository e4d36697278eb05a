#!/usr/bin/env bash
# Exits 0 when Jellyfin reports itself healthy.
set -euo pipefail

curl -fsS --max-time 5 -o /dev/null http://127.0.0.1:8096/health
