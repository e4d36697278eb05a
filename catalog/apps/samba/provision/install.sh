#!/usr/bin/env bash
# Installs Samba from Debian's archive with one share and one user.
# Safe to run again: every step overwrites its own result; files on the share are kept.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env SAMBA_SHARE SAMBA_USER SAMBA_PASSWORD SAMBA_WORKGROUP SAMBA_GUEST_READ

log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='samba ${Version}' samba)"

ensure_user
prepare_share
write_config
set_password
disable_nmbd

log "Enabling and starting smbd.service"
systemctl enable --quiet smbd
systemctl restart smbd
wait_for_smbd
check_login
log "Done. Connect to smb://<container-ip>/${SAMBA_SHARE} as '${SAMBA_USER}'."
