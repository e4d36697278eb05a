#!/usr/bin/env bash
# Installs Radicale from Debian's archive (no other repository) with bcrypt htpasswd login.
# Safe to run again: every step overwrites its own result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env RADICALE_USER RADICALE_PASSWORD RADICALE_PORT

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='radicale ${Version}' radicale)"

prepare_storage
write_config
write_users

log "Enabling and starting radicale.service"
systemctl daemon-reload
systemctl enable --quiet radicale
systemctl restart radicale
wait_for_radicale
check_login
log "Done. Point your CalDAV/CardDAV client at http://<container-ip>:${RADICALE_PORT}/ as '${RADICALE_USER}'."
