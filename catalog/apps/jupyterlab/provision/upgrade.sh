#!/usr/bin/env bash
# Upgrades JupyterLab to the version pinned in this catalog version and refreshes the Debian
# packages; the store took a snapshot first and rolls back when this or the health check fails.
# Notebooks and packages you added to the venv are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env JL_PASSWORD JL_PORT JL_TERMINALS

log "Refreshing the Debian packages"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
before=$(as_jupyter "$VENV/bin/pip" show jupyterlab 2>/dev/null | sed -n 's/^Version: //p' || true)
install_venv
log "jupyterlab ${before:-none} -> ${JL_VERSION}"
prepare_storage
write_config
write_unit
start_service
check_login
log "Upgrade finished"
