#!/usr/bin/env bash
# Exits 0 when Plex Media Server answers its unauthenticated /identity endpoint.
set -euo pipefail

curl -fsS --max-time 5 -o /dev/null http://127.0.0.1:32400/identity
