#!/usr/bin/env bash
# Upgrades Glances to the version pinned in this catalog version and refreshes the Debian
# packages; the store took a snapshot first and rolls back when this or the health check fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env GL_USER GL_PASSWORD GL_PORT GL_REFRESH

log "Refreshing the Debian packages"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
before=$("$VENV/bin/pip" show glances 2>/dev/null | sed -n 's/^Version: //p' || true)
install_venv
log "glances ${before:-none} -> ${GL_VERSION}"
write_config
write_password
write_unit
start_service
check_login
log "Upgrade finished"
