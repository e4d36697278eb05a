#!/usr/bin/env bash
# Installs Calibre-Web (PyPI package calibreweb, pinned, in a venv under /opt/calibre-web) as a
# systemd service running as the calibre-web user. Creates an empty Calibre library when the
# library volume has none, and sets the admin login non-interactively.
# Safe to run again: an existing library and settings database are kept; the login is re-applied.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env CW_USER CW_PASSWORD CW_PORT CW_UPLOADS

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
prepare_storage
install_venv
ensure_library
write_unit
ensure_settings_db
apply_settings
log "Starting Calibre-Web"
start_service
check_login
log "Done. Open http://<container-ip>:${CW_PORT}/ and log in as '${CW_USER}'."
