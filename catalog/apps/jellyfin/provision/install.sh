#!/usr/bin/env bash
# Installs Jellyfin from its official Debian repository and, when the store attached a GPU, the
# drivers hardware transcoding needs (gpu.sh), with Jellyfin set to use the GPU. Safe to run
# again: every step checks or overwrites its result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
log "GPU from the store: ${GPU_VENDOR:-none}; GPU drivers: ${HWACCEL}"

log "Installing prerequisites (curl, ca-certificates)"
apt-get update -q
apt_install curl ca-certificates

add_jellyfin_repository
apt-get update -q
log "Installing Jellyfin"
apt_install jellyfin
log "Installed $(dpkg-query -W -f='jellyfin-server ${Version}' jellyfin-server)"

fix_data_ownership
add_device_groups
setup_gpu

log "Starting Jellyfin"
systemctl daemon-reload
systemctl enable --quiet jellyfin
# A restart picks up the new group memberships and the data directory's ownership.
systemctl restart jellyfin
wait_for_jellyfin
set_server_name

log "Done. Open http://<container-ip>:8096 to create the first user and add libraries."
if [[ -n $GPU_VENDOR && $HWACCEL != none ]]; then
    log "Hardware transcoding is on ($GPU_VENDOR); review it under Dashboard > Playback > Transcoding"
fi
