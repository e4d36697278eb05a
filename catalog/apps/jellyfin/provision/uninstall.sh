#!/usr/bin/env bash
# Runs before the container is destroyed: stops Jellyfin so its database on the data volume is
# closed cleanly, then keeps a copy of its settings (/etc/jellyfin, on the root disk) on that
# volume, so a reinstall keeping the volume gets them back (and no open startup wizard). Nothing
# is deleted; the media library is a host directory and is never touched.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if systemctl is-active --quiet jellyfin; then
    log "Stopping Jellyfin"
    systemctl stop jellyfin
else
    log "Jellyfin is not running"
fi
if [[ -d $JELLYFIN_DATA ]]; then
    save_etc_to_volume || warn "could not copy $JELLYFIN_ETC to the config volume"
fi
log "/var/lib/jellyfin and /media were not touched"
