#!/usr/bin/env bash
# Applies changed settings: the role's password, the allowed networks and the port. Then checks
# SELECT 1 over TCP with the new login.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DB_NAME DB_USER DB_PASSWORD DB_PORT DB_ALLOWED_NETWORKS

detect_major
write_config
# A port change needs a restart; pg_hba.conf alone would only need a reload.
systemctl restart "$PG_SERVICE"
wait_for_postgres
apply_role_and_database
check_login || die "the login as '${DB_USER}' over TCP failed"
log "SELECT 1 as '${DB_USER}' over TCP works"
save_config_copy
log "Reconfiguration finished"
