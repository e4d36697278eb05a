#!/usr/bin/env bash
# Applies changed settings: share name, guest access, workgroup and the password. Checks the login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env SAMBA_SHARE SAMBA_USER SAMBA_PASSWORD SAMBA_WORKGROUP SAMBA_GUEST_READ

ensure_user
prepare_share
write_config
set_password
# A reload keeps open sessions; a renamed share appears at once either way.
systemctl reload-or-restart smbd
wait_for_smbd
check_login
log "Reconfiguration finished"
