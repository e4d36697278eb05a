#!/usr/bin/env bash
# Upgrades MiniDLNA from the Debian archive and re-applies the configuration. Media are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DLNA_NAME DLNA_ROOT DLNA_INOTIFY DLNA_PORT

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' minidlna 2>/dev/null || echo none)
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' minidlna)
if [[ $before == "$after" ]]; then
    log "minidlna is already the newest version (${after})"
else
    log "minidlna upgraded from ${before} to ${after}"
fi

prepare_media
write_config
restart_minidlna
wait_for_minidlna
log "Upgrade finished"
