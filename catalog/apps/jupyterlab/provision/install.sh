#!/usr/bin/env bash
# Installs JupyterLab (PyPI, pinned, in a venv under /opt/jupyterlab) as a systemd service running
# as the jupyter user, with a hashed password and no token. Notebooks live on their own volume.
# Safe to run again: the notebooks are kept; the password is re-applied.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env JL_PASSWORD JL_PORT JL_TERMINALS

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
prepare_storage
if [[ -n $(ls -A "$NOTEBOOK_DIR" 2>/dev/null) ]]; then
    log "Found files from an earlier install in $NOTEBOOK_DIR; they are kept"
fi
install_venv
write_config
write_unit
log "Starting JupyterLab"
start_service
check_login
check_kernel
log "Done. Open http://<container-ip>:${JL_PORT}/lab and log in with the password."
