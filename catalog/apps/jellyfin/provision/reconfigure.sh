#!/usr/bin/env bash
# Applies changed reconfigurable inputs: the server name and the GPU driver choice.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
if [[ $HWACCEL != none && -n $GPU_VENDOR ]]; then
    apt-get update -q
fi
install_gpu_support
systemctl restart jellyfin
wait_for_jellyfin
set_server_name
log "Reconfiguration finished"
