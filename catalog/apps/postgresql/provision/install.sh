#!/usr/bin/env bash
# Installs PostgreSQL from Debian 13's archive (no other repository): one cluster, one database and
# its owner role, password logins (scram-sha-256) from the allowed networks.
# Safe to run again, and on a data volume from an earlier install: the cluster is adopted, never
# re-initialised, and the role gets the (new) password.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DB_NAME DB_USER DB_PASSWORD DB_PORT DB_ALLOWED_NETWORKS

log "Installing postgresql-common from the Debian archive (creates the postgres user)"
apt-get update -q
apt_install postgresql-common
# Before the server package creates or adopts the cluster, the volume must belong to postgres.
prepare_data
restore_config_copy
if compgen -G "$DATA_ROOT/*/$CLUSTER/PG_VERSION" >/dev/null && ! compgen -G "/etc/postgresql/*/$CLUSTER/postgresql.conf" >/dev/null; then
    log "The volume holds a cluster but no saved configuration: Debian's package will report that it"
    log "cannot create its default cluster; this script adopts the existing one right after"
fi

log "Installing postgresql from the Debian archive"
apt_install postgresql
detect_major
log "Installed $(dpkg-query -W -f='${Package} ${Version}' "postgresql-${PG_MAJOR}")"

ensure_cluster
write_config

log "Enabling and starting ${PG_SERVICE}"
systemctl enable --quiet postgresql
systemctl restart "$PG_SERVICE"
wait_for_postgres
apply_role_and_database
check_login || die "the login as '${DB_USER}' over TCP failed"
log "SELECT 1 as '${DB_USER}' over TCP works"
save_config_copy
log "Done. Connect with: psql -h <container-ip> -p ${DB_PORT} -U ${DB_USER} ${DB_NAME}"
