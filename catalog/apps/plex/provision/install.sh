#!/usr/bin/env bash
# Installs Plex Media Server (pinned version) from Plex's apt repository and, when the store
# attached a GPU, the drivers hardware transcoding needs (gpu.sh), with Plex set to use the GPU.
# Safe to run again: every step checks or overwrites its result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
log "GPU from the store: ${GPU_VENDOR:-none}; GPU drivers: ${HWACCEL}"

log "Installing prerequisites (curl, ca-certificates, gpg)"
apt-get update -q
apt_install curl ca-certificates gpg

add_plex_repository
apt-get update -q
install_plex_package
log "Installed $(dpkg-query -W -f='plexmediaserver ${Version}' plexmediaserver)"

fix_ownership
add_device_groups
setup_gpu

log "Starting Plex Media Server"
systemctl daemon-reload
systemctl enable --quiet plexmediaserver
# A restart picks up the new group memberships and the volume's ownership.
systemctl restart plexmediaserver
wait_for_plex
apply_settings

log "Done. Open http://<container-ip>:32400/web and sign in with your plex.tv account."
if [[ -n $GPU_VENDOR && $HWACCEL != none ]]; then
    log "Hardware transcoding is on ($GPU_VENDOR); it needs an active Plex Pass"
fi
