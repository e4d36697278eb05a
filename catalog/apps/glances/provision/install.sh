#!/usr/bin/env bash
# Installs Glances (PyPI, pinned, with its web server extra, in a venv under /opt/glances) as a
# systemd service running `glances -w` as the glances user, with a hashed password.
# Safe to run again: every step overwrites its own result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env GL_USER GL_PASSWORD GL_PORT GL_REFRESH

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"

ensure_user
install_venv
write_config
write_password
write_unit
log "Starting Glances"
start_service
check_login
log "Done. Open http://<container-ip>:${GL_PORT}/ and log in as '${GL_USER}'."
