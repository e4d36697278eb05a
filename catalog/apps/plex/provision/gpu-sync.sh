#!/usr/bin/env bash
# GPU sync, run by the store's "GPU sync" job after the host's GPU driver changed or a GPU came
# back (the store has attached the device nodes again and started the container). Brings the
# container in line with the host again: the userland of the host's driver (NVIDIA: exactly
# APPSTORE_NVIDIA_DRIVER_VERSION), Plex pointed at the device nodes as they are now, Plex
# restarted, and the GPU check. Every step is gpu.sh's, as install.sh and upgrade.sh run it; safe
# to run again: each step checks or overwrites its result. Fails when the GPU check fails, so the
# store does not record a userland that does not work.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
if [[ -z ${APPSTORE_GPU_VENDOR:-} ]]; then
    log "No GPU attached (APPSTORE_GPU_VENDOR is empty): nothing to sync; Plex transcodes in software"
    exit 0
fi
if [[ $GPU_VENDOR == nvidia ]]; then
    log "GPU sync for Plex Media Server: nvidia, host driver ${APPSTORE_NVIDIA_DRIVER_VERSION:-not passed by the store (read from /proc/driver/nvidia/version)}"
else
    log "GPU sync for Plex Media Server: $GPU_VENDOR"
fi
if [[ $HWACCEL == none ]]; then
    log "GPU transcoding is set to 'none': nothing GPU-related to install or configure; Plex keeps transcoding in software"
    exit 0
fi

gpu=$PROVISION_DIR/gpu.sh
add_device_groups
log "Installing the $GPU_VENDOR userland (gpu.sh userland)"
APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" userland
log "Pointing Plex at the GPU's device nodes (gpu.sh configure)"
APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" configure

log "Restarting Plex Media Server"
systemctl daemon-reload
systemctl restart plexmediaserver
wait_for_plex

log "Checking the GPU (gpu.sh check)"
if ! APPSTORE_GPU_VENDOR=$GPU_VENDOR bash "$gpu" check; then
    die "the GPU check failed (see above); Plex transcodes in software until the GPU sync succeeds"
fi
log "GPU sync finished: hardware transcoding is on ($GPU_VENDOR; it needs an active Plex Pass)"
