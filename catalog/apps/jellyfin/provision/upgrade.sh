#!/usr/bin/env bash
# Upgrades Jellyfin from its repository and brings the GPU drivers in line again (after a host
# NVIDIA driver update the container needs the matching userland). Data and settings are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env

log "Refreshing package lists"
apt-get update -q
# gpg checks the repository key against the pinned fingerprint (earlier versions did not need it).
apt_install curl ca-certificates gpg
add_jellyfin_repository
apt-get update -q
before=$(dpkg-query -W -f='${Version}' jellyfin-server 2>/dev/null || echo none)
# Installing the metapackage again follows it to new dependencies (a newer jellyfin-ffmpeg).
apt_install jellyfin
apt-get install -y -q --only-upgrade --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    jellyfin-server jellyfin-web
after=$(dpkg-query -W -f='${Version}' jellyfin-server)
if [[ $before == "$after" ]]; then
    log "Jellyfin is already the newest version (${after})"
else
    log "Jellyfin upgraded from ${before} to ${after}"
fi

fix_data_ownership
add_device_groups
setup_gpu
systemctl daemon-reload
systemctl restart jellyfin
wait_for_jellyfin
save_etc_to_volume
log "Upgrade finished"
