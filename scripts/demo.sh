#!/usr/bin/env bash
# Runs the PVE App Store demo on http://127.0.0.1:8088 (extra arguments go to `pve-appstore demo`,
# for example --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
exec cargo run --locked --release -p appstore-web --features demo --bin pve-appstore -- demo "$@"
