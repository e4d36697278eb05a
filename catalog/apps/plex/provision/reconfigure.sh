#!/usr/bin/env bash
# Applies changed reconfigurable inputs: the server name, a claim token (when the server is not
# claimed yet) and the GPU choice (auto: drivers and hardware transcoding for the attached GPU;
# none: hardware transcoding off).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
if [[ $HWACCEL == none ]]; then
    bash "$PROVISION_DIR/gpu.sh" off
else
    setup_gpu
fi
systemctl restart plexmediaserver
wait_for_plex
apply_settings
log "Reconfiguration finished"
