#!/usr/bin/env bash
# Applies changed inputs: the admin password (through the API, checked by a login), the site
# name, the public URL, the SSH port and whether visitors may register.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env FJ_ADMIN_USER FJ_ADMIN_PASSWORD FJ_ADMIN_EMAIL FJ_HTTP_PORT FJ_SSH_PORT FJ_ROOT_URL

prepare_workdir
systemctl stop forgejo
write_config
ensure_admin
systemctl start forgejo
wait_for_forgejo
set_admin_password
check_login
log "Reconfiguration finished"
