#!/usr/bin/env bash
# Exits 0 when Ollama's API answers /api/version.
set -euo pipefail

port=${APP_PORT:-11434}
port=${port%.0}
curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:${port}/api/version"
