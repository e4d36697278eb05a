#!/usr/bin/env bash
# Upgrades Calibre-Web to the version pinned in this catalog version and refreshes the Debian
# packages; the store took a snapshot first and rolls back when this or the health check fails.
# The library and the settings database (accounts, shelves) are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env CW_PORT

log "Refreshing the Debian packages"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
before=$("$VENV/bin/pip" show calibreweb 2>/dev/null | sed -n 's/^Version: //p' || true)
systemctl stop "$SERVICE" 2>/dev/null || true
install_venv
log "calibreweb ${before:-none} -> ${CW_VERSION}"
prepare_storage
write_unit
start_service
log "Upgrade finished"
