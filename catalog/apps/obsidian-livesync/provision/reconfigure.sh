#!/usr/bin/env bash
# Applies changed reconfigurable inputs: admin user and password, port, CORS origins.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env ADMIN_USER ADMIN_PASSWORD COUCHDB_DATABASE COUCHDB_PORT

log "Applying the new settings"
write_livesync_ini
# Replaces the whole [admins] section: a renamed administrator loses the old name.
write_admin_ini
fix_ownership
log "Restarting CouchDB"
systemctl restart couchdb
wait_for_couchdb
check_admin_login
check_password_hashed
ensure_database "$COUCHDB_DATABASE"
log "Reconfiguration finished"
