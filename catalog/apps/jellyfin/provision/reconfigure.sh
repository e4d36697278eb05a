#!/usr/bin/env bash
# Applies changed reconfigurable inputs: the server name and the GPU driver choice (auto installs
# and configures the drivers of the attached GPU; none switches Jellyfin's hardware acceleration
# off again).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
if [[ $HWACCEL == none ]]; then
    bash "$PROVISION_DIR/gpu.sh" off
else
    setup_gpu
fi
systemctl restart jellyfin
wait_for_jellyfin
set_server_name
save_etc_to_volume
log "Reconfiguration finished"
