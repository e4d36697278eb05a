#!/usr/bin/env bash
# Applies changed settings (port, keep-alive, allowed origins) to the service and pulls a newly
# named model.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
write_unit
systemctl daemon-reload
systemctl restart ollama
wait_for_ollama
pull_model
log "Reconfiguration finished"
