#!/usr/bin/env bash
# Exits 0 when Forgejo's health endpoint reports it healthy (database reachable).
set -euo pipefail

port=${FJ_HTTP_PORT:-3000}
port=${port%.0}
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:${port}/api/healthz"
