#!/usr/bin/env bash
# Installs transmission-daemon from Debian's archive with its web interface behind a login.
# Safe to run again: settings are rewritten, downloads on the volume are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env TR_USER TR_PASSWORD TR_PORT TR_PEER_PORT TR_ENCRYPTION

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='transmission-daemon ${Version}' transmission-daemon)"

stop_daemon
prepare_downloads
write_settings
start_daemon
wait_for_daemon
check_login
log "Done. Open http://<container-ip>:${TR_PORT}/transmission/web/ and log in as '${TR_USER}'."
