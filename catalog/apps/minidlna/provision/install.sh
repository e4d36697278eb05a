#!/usr/bin/env bash
# Installs MiniDLNA from Debian's archive, serving the media volume.
# Safe to run again: the configuration is rewritten, media on the volume are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DLNA_NAME DLNA_ROOT DLNA_INOTIFY DLNA_PORT

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='minidlna ${Version}' minidlna)"

prepare_media
write_config
restart_minidlna
wait_for_minidlna
check_description
log "Done. Put media into ${MEDIA_DIR}; players on your network find '${DLNA_NAME}' by themselves."
