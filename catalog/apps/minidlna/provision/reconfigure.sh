#!/usr/bin/env bash
# Applies a changed server name, view, file watching or port.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DLNA_NAME DLNA_ROOT DLNA_INOTIFY DLNA_PORT

prepare_media
write_config
restart_minidlna
wait_for_minidlna
check_description
log "Reconfiguration finished"
