#!/usr/bin/env bash
# Upgrades PostgreSQL's packages from the Debian archive (minor releases of the same major) and
# re-applies the configuration. The databases are left alone.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_env DB_NAME DB_USER DB_PASSWORD DB_PORT DB_ALLOWED_NETWORKS

log "Refreshing package lists"
apt-get update -q
detect_major
pkg=postgresql-$PG_MAJOR
before=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null || echo none)
apt_install postgresql postgresql-common "$pkg" "postgresql-client-$PG_MAJOR"
after=$(dpkg-query -W -f='${Version}' "$pkg")
if [[ $before == "$after" ]]; then
    log "$pkg is already the newest version (${after})"
else
    log "$pkg upgraded from ${before} to ${after}"
fi

prepare_data
write_config
systemctl restart "$PG_SERVICE"
wait_for_postgres
check_login || die "the login as '${DB_USER}' over TCP failed after the upgrade"
save_config_copy
log "Upgrade finished"
