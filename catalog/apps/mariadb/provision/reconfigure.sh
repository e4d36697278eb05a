#!/usr/bin/env bash
# Applies changed settings: the password, the allowed client hosts and the port. Then checks
# SELECT 1 over TCP with the new login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DB_NAME DB_USER DB_PASSWORD DB_ALLOWED_HOSTS DB_PORT

write_config
systemctl restart mariadb
wait_for_mariadb
apply_user_and_database
check_login || die "the login as '${DB_USER}' over TCP failed"
log "SELECT 1 as '${DB_USER}' over TCP works"
log "Reconfiguration finished"
