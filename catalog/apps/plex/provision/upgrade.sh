#!/usr/bin/env bash
# Moves Plex Media Server to the version this catalog entry pins, re-checks the repository key and
# brings the GPU drivers in line again (after a host NVIDIA driver update the container needs the
# matching userland). The library and settings on the config volume are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

check_env
before=$(installed_version)
add_plex_repository
apt-get update -q
install_plex_package
after=$(installed_version)
if [[ $before == "$after" ]]; then
    log "Plex Media Server stays at $after (pinned: $PLEX_VERSION)"
else
    log "Plex Media Server upgraded from ${before:-none} to $after"
fi

fix_ownership
add_device_groups
setup_gpu
systemctl daemon-reload
systemctl restart plexmediaserver
wait_for_plex
apply_settings
log "Upgrade finished"
