#!/usr/bin/env bash
# Upgrades Samba from the Debian archive and re-applies the configuration. The files on the
# share and the password database are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env SAMBA_SHARE SAMBA_USER SAMBA_PASSWORD SAMBA_WORKGROUP SAMBA_GUEST_READ

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' samba 2>/dev/null || echo none)
# Upgrades the packages and installs any helper a newer catalog version added.
apt_install "${PACKAGES[@]}"
after=$(dpkg-query -W -f='${Version}' samba)
if [[ $before == "$after" ]]; then
    log "samba is already the newest version (${after})"
else
    log "samba upgraded from ${before} to ${after}"
fi

ensure_user
prepare_share
write_config
disable_nmbd
systemctl restart smbd
wait_for_smbd
check_login
log "Upgrade finished"
