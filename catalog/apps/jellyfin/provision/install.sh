#!/usr/bin/env bash
# Installs Jellyfin from its official Debian repository and, when the store attached a GPU, the
# drivers hardware transcoding needs (gpu.sh), with Jellyfin set to use the GPU. Safe to run
# again: every step checks or overwrites its result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
log "GPU from the store: ${GPU_VENDOR:-none}; GPU drivers: ${HWACCEL}"

# Whether the config volume came with Jellyfin's database from an earlier container (looked at
# before the package is installed, whose first start creates a database of its own).
had_db=no
if [[ -f $JELLYFIN_DB ]] && ! dpkg-query -W -f='${Status}' jellyfin-server 2>/dev/null | grep -q 'ok installed'; then
    had_db=yes
fi

log "Installing prerequisites (curl, ca-certificates, gpg, sqlite3)"
apt-get update -q
apt_install curl ca-certificates gpg sqlite3

add_jellyfin_repository
apt-get update -q
log "Installing Jellyfin"
apt_install jellyfin
log "Installed $(dpkg-query -W -f='jellyfin-server ${Version}' jellyfin-server)"

# Before anything else runs Jellyfin with the package's fresh /etc/jellyfin.
restore_etc_from_volume
ensure_wizard_completed "$had_db"
if [[ -e $RESTORED_MARKER && ($HWACCEL == none || -z $GPU_VENDOR) ]]; then
    # The restored settings may point at the GPU of the earlier container.
    bash "$PROVISION_DIR/gpu.sh" off
fi

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
save_etc_to_volume

if [[ -f $JELLYFIN_SYSTEM_XML ]] && grep -qF "$WIZARD_DONE" "$JELLYFIN_SYSTEM_XML"; then
    log "Done. Open http://<container-ip>:8096 and sign in with your existing Jellyfin account."
else
    log "Done. Open http://<container-ip>:8096 to create the first user and add libraries."
fi
if [[ -n $GPU_VENDOR && $HWACCEL != none ]]; then
    log "Hardware transcoding is on ($GPU_VENDOR); review it under Dashboard > Playback > Transcoding"
fi
