#!/usr/bin/env bash
# Installs Apache CouchDB from Apache's Debian repository and configures it for Obsidian
# Self-hosted LiveSync. Safe to run again: every step checks or overwrites its own result.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env ADMIN_USER ADMIN_PASSWORD COUCHDB_DATABASE COUCHDB_PORT

log "Installing prerequisites (curl, ca-certificates, gpg)"
apt-get update -q
apt-get install -y -q --no-install-recommends curl ca-certificates gpg

add_couchdb_repository

log "Pre-seeding the package questions (standalone node, bound to 0.0.0.0)"
# The admin account is written by this script instead of the package, because the package can only
# create a user named "admin". Empty answers tell the package not to create one.
cookie=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
debconf-set-selections <<EOF
couchdb couchdb/mode select standalone
couchdb couchdb/mode seen true
couchdb couchdb/bindaddress string 0.0.0.0
couchdb couchdb/bindaddress seen true
couchdb couchdb/cookie string ${cookie}
couchdb couchdb/cookie seen true
couchdb couchdb/adminpass password
couchdb couchdb/adminpass seen true
couchdb couchdb/adminpass_again password
couchdb couchdb/adminpass_again seen true
EOF
protect_debconf_cache

# Written before the package so that CouchDB's first start already has an admin (CouchDB 3 refuses
# to start without one) and the LiveSync settings.
log "Writing the CouchDB configuration"
write_systemd_dropin
write_livesync_ini
write_admin_ini

log "Installing CouchDB"
apt-get update -q
apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold couchdb
log "Installed $(dpkg-query -W -f='couchdb ${Version}' couchdb)"
protect_debconf_cache

fix_ownership
systemctl daemon-reload
systemctl enable --quiet couchdb
log "Restarting CouchDB with the new configuration"
systemctl restart couchdb
wait_for_couchdb
check_admin_login
check_password_hashed

log "Creating the system databases and the LiveSync database"
ensure_database _users
ensure_database _replicator
ensure_database "$COUCHDB_DATABASE"

log "Done. In the LiveSync plugin use the server URL shown by the store, user '${ADMIN_USER}' and database '${COUCHDB_DATABASE}'."
