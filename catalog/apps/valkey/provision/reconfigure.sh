#!/usr/bin/env bash
# Applies changed settings: password, port, memory limit and policy, append-only file. Restarts
# Valkey (its data is saved on the way down and loaded again) and checks PING with the new password.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env VALKEY_PASSWORD VALKEY_PORT VALKEY_MAXMEMORY_MB VALKEY_MAXMEMORY_POLICY VALKEY_APPENDONLY

apply_and_start
log "Reconfiguration finished"
