#!/usr/bin/env bash
# Upgrades MariaDB from the Debian archive and re-applies the configuration. The databases are left
# alone; Debian's scripts run mariadb-upgrade when the server version changes.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DB_NAME DB_USER DB_PASSWORD DB_PORT

log "Refreshing package lists"
apt-get update -q
before=$(dpkg-query -W -f='${Version}' mariadb-server 2>/dev/null || echo none)
apt_install "${PACKAGES[@]}" mariadb-server-core mariadb-client-core mariadb-common
after=$(dpkg-query -W -f='${Version}' mariadb-server)
if [[ $before == "$after" ]]; then
    log "mariadb-server is already the newest version (${after})"
else
    log "mariadb-server upgraded from ${before} to ${after}"
fi

prepare_data
write_config
systemctl restart mariadb
wait_for_mariadb
check_login || die "the login as '${DB_USER}' over TCP failed after the upgrade"
log "Upgrade finished"
