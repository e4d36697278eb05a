#!/usr/bin/env bash
# Installs MariaDB from Debian 13's archive (no other repository): one database and a user that may
# log in over the network. Safe to run again, and on a data volume from an earlier install: the
# data is kept (Debian's scripts only initialise an empty directory) and the user gets the (new)
# password.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DB_NAME DB_USER DB_PASSWORD DB_ALLOWED_HOSTS DB_PORT

if [[ -d $DATA_DIR/mysql ]]; then
    log "The data volume already holds databases; they are kept"
fi
log "Installing ${PACKAGES[*]} from the Debian archive"
apt-get update -q
apt_install "${PACKAGES[@]}"
log "Installed $(dpkg-query -W -f='mariadb-server ${Version}' mariadb-server)"

prepare_data
write_config

log "Enabling and starting mariadb.service"
systemctl enable --quiet mariadb
systemctl restart mariadb
wait_for_mariadb
apply_user_and_database
check_login || die "the login as '${DB_USER}' over TCP failed"
log "SELECT 1 as '${DB_USER}' over TCP works"
log "Done. Connect with: mariadb -h <container-ip> -P ${DB_PORT} -u ${DB_USER} -p ${DB_NAME}"
